"""PPO pieces against hand-computed values: GAE with an episode end, the clipped surrogate inside and
outside the clip range."""
from __future__ import annotations

import pytest
import torch

from adaptive_mbrl.baselines.ppo import clip_fraction, clipped_surrogate_loss, gae


def test_gae_matches_a_hand_computed_four_step_example_with_a_done() -> None:
    # gamma 0.9, lambda 0.8 (gamma * lambda = 0.72); the episode ends after step 1.
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    values = torch.tensor([0.5, 1.0, 1.5, 2.0])
    dones = torch.tensor([0.0, 1.0, 0.0, 0.0])
    adv, ret = gae(rewards, values, dones, torch.tensor(3.0), gamma=0.9, lam=0.8)
    # t=3: 4 + 0.9*3 - 2 = 4.7;  t=2: 3 + 0.9*2 - 1.5 = 3.3, + 0.72*4.7 = 6.684
    # t=1 (done: no bootstrap, no carry): 2 - 1 = 1.0;  t=0: 1 + 0.9*1 - 0.5 = 1.4, + 0.72*1.0 = 2.12
    expected = torch.tensor([2.12, 1.0, 6.684, 4.7])
    assert torch.allclose(adv, expected, atol=1e-5)
    assert torch.allclose(ret, expected + values, atol=1e-5)


def test_gae_runs_over_a_batch_axis_independently() -> None:
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])   # [T=3, B=2]
    values = torch.zeros(3, 2)
    dones = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    adv, _ = gae(rewards, values, dones, torch.tensor([5.0, 10.0]), gamma=0.5, lam=1.0)
    # column 0: ends at t=2 -> discounted sums 1 + .5 + .25 = 1.75, 1.5, 1
    # column 1: bootstraps 10 -> t=2: 2 + 5 = 7, t=1: 1 + 3.5 = 4.5, t=0: 0 + 2.25 = 2.25
    assert torch.allclose(adv[:, 0], torch.tensor([1.75, 1.5, 1.0]))
    assert torch.allclose(adv[:, 1], torch.tensor([2.25, 4.5, 7.0]))


def test_clipped_surrogate_inside_and_outside_the_clip_range() -> None:
    ratios = torch.tensor([1.1, 1.5, 0.5, 1.5])
    adv = torch.tensor([2.0, 2.0, -1.0, -1.0])
    old = torch.zeros(4)
    log_prob = ratios.log().requires_grad_(True)
    loss = clipped_surrogate_loss(log_prob, old, adv, clip=0.2)
    # min(rA, clip(r)A): 1.1*2 = 2.2 (inside); min(3.0, 1.2*2 = 2.4) = 2.4 (clipped);
    # min(-0.5, 0.8*-1 = -0.8) = -0.8 (clipped); min(-1.5, -1.2) = -1.5 (unclipped: pessimistic side)
    assert loss.item() == pytest.approx(-(2.2 + 2.4 - 0.8 - 1.5) / 4, abs=1e-6)
    loss.backward()
    # d/dlogp of -r A / 4 where unclipped; zero where the clipped term is the minimum
    assert torch.allclose(log_prob.grad, torch.tensor([-1.1 * 2 / 4, 0.0, 0.0, 1.5 / 4]), atol=1e-6)
    assert clip_fraction(log_prob.detach(), old, 0.2) == pytest.approx(0.75)


def test_ratio_one_gives_the_plain_policy_gradient_loss() -> None:
    adv = torch.tensor([1.0, -3.0, 2.0])
    loss = clipped_surrogate_loss(torch.zeros(3), torch.zeros(3), adv, clip=0.1)
    assert loss.item() == pytest.approx(-adv.mean().item())
