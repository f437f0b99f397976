"""The planner's posture term (adaptive_mbrl/planning/score_terms.py): it shapes the planner's score only."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_mbrl.planning.score_terms import with_upright_cost


def _reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return next_obs[..., 0] - 0.1 * (act * act).sum(-1)


def _pitch_cos(next_obs: torch.Tensor) -> torch.Tensor:
    return next_obs[..., 1].cos()


def test_zero_weight_or_no_base_orientation_is_the_environment_reward_itself() -> None:
    assert with_upright_cost(_reward, None, 0.0) is _reward
    assert with_upright_cost(_reward, _pitch_cos, 0.0) is _reward
    assert with_upright_cost(_reward, None, 3.0) is _reward  # e.g. the cart-pole: one preset runs everywhere


def test_the_term_grows_with_the_tilt_and_leaves_upright_states_alone() -> None:
    shaped = with_upright_cost(_reward, _pitch_cos, 3.0)
    act = torch.zeros(4, 2)
    next_obs = torch.tensor([[2.0, 0.0], [2.0, math.pi / 2], [2.0, math.pi], [2.0, -math.pi]])
    got = shaped(torch.zeros(4, 2), act, next_obs)
    # upright: the reward; on its side: 3 less; upside down (either way round): 6 less
    torch.testing.assert_close(got, torch.tensor([2.0, -1.0, -4.0, -4.0]))


def test_it_works_on_planner_batches_of_any_leading_shape() -> None:
    shaped = with_upright_cost(_reward, _pitch_cos, 1.0)
    next_obs = torch.randn(3, 7, 5, 2)
    got = shaped(torch.zeros(3, 7, 5, 2), torch.zeros(3, 7, 5, 4), next_obs)
    assert got.shape == (3, 7, 5)
    torch.testing.assert_close(got, next_obs[..., 0] - (1 - next_obs[..., 1].cos()))


def test_a_negative_weight_is_refused_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="planner.upright_cost must be >= 0"):
        with_upright_cost(_reward, _pitch_cos, -1.0)
