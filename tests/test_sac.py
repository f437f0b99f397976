"""SAC v1: targets by hand, tanh-Gaussian log-probability, one update on tiny constant networks."""
from __future__ import annotations

import math

import pytest
import torch

from adaptive_mbrl.baselines.networks import TanhGaussianPolicy, tanh_gaussian_log_prob
from adaptive_mbrl.baselines.presets import SACConfig
from adaptive_mbrl.baselines.sac import SAC, q_target, v_target


def test_q_target_is_scaled_reward_plus_discounted_target_value_unless_done() -> None:
    target = q_target(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), torch.tensor([3.0, 3.0]),
                      gamma=0.9, reward_scale=5.0)
    assert torch.allclose(target, torch.tensor([5.0 + 0.9 * 3.0, 10.0]))


def test_v_target_is_min_q_minus_alpha_log_pi() -> None:
    v = v_target(torch.tensor([1.0, 4.0]), torch.tensor([2.0, 3.0]), torch.tensor([-0.5, 1.0]), alpha=0.2)
    assert torch.allclose(v, torch.tensor([1.0 + 0.1, 3.0 - 0.2]))


def test_tanh_gaussian_log_prob_includes_the_change_of_variables() -> None:
    u, mean, log_std = 0.5, 0.1, math.log(0.7)
    gauss = -0.5 * ((u - mean) / 0.7) ** 2 - math.log(0.7) - 0.5 * math.log(2 * math.pi)
    expected = gauss - math.log(1 - math.tanh(u) ** 2)
    got = tanh_gaussian_log_prob(torch.tensor([u]), torch.tensor([mean]), torch.tensor([log_std]))
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # two dimensions add up; extreme pre-tanh values stay finite (log(1 - tanh^2) underflows naively)
    two = tanh_gaussian_log_prob(torch.tensor([u, -u]), torch.tensor([mean, -mean]), torch.tensor([log_std] * 2))
    assert two.item() == pytest.approx(2 * expected, abs=1e-5)
    far = tanh_gaussian_log_prob(torch.tensor([30.0]), torch.tensor([30.0]), torch.tensor([0.0]))
    assert torch.isfinite(far) and far.item() == pytest.approx(-0.5 * math.log(2 * math.pi) + 2 * 30 - 2 * math.log(2), rel=1e-4)


def test_policy_sample_matches_its_log_prob_and_deterministic_is_tanh_mean() -> None:
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(3, 2, [8])
    obs = torch.randn(5, 3)
    out = policy.sample(obs)
    assert out["action"].shape == (5, 2) and out["log_prob"].shape == (5,)
    assert (out["action"].abs() < 1).all()
    assert torch.allclose(out["log_prob"], tanh_gaussian_log_prob(out["pre_tanh"], out["mean"], out["log_std"]))
    det = policy.sample(obs, deterministic=True)
    assert torch.allclose(det["action"], torch.tanh(det["mean"]))


def _constant(module: torch.nn.Module, value: float) -> None:
    """Every weight zero, the output layer's bias ``value``: the network outputs ``value`` everywhere."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
        list(module.modules())[-1].bias.fill_(value)


def test_update_uses_the_hand_computed_targets_on_constant_networks() -> None:
    cfg = SACConfig(hidden_sizes=[4], learning_rate=1e-12, gamma=0.9, reward_scale=5.0, alpha=0.0, tau=0.5)
    sac = SAC(2, 1, cfg)
    _constant(sac.q1, 1.0)
    _constant(sac.q2, 2.0)
    _constant(sac.v, 0.5)
    _constant(sac.v_target, 3.0)
    obs = torch.randn(2, 2)
    stats = sac.update(obs, torch.zeros(2, 1), torch.tensor([1.0, 2.0]), torch.randn(2, 2), torch.tensor([0.0, 1.0]))
    # Q targets 5 + 0.9 * 3 = 7.7 and 10 (done); Q1 = 1, Q2 = 2
    assert stats["q_loss"] == pytest.approx(((1 - 7.7) ** 2 + (1 - 10) ** 2) / 2 + ((2 - 7.7) ** 2 + (2 - 10) ** 2) / 2,
                                            rel=1e-6)
    # V target = min(Q1, Q2) - 0 * log pi = 1; V = 0.5
    assert stats["v_loss"] == pytest.approx(0.25, rel=1e-5)
    # target V moved half-way to V (tau = 0.5): bias 3 -> 1.75
    assert sac.v_target(obs).detach() == pytest.approx(torch.full((2,), 1.75), abs=1e-5)


def test_update_learns_a_one_step_bandit() -> None:
    """Rewards ``-(a - 0.5)^2`` with done=1: the policy's mean action moves to 0.5."""
    torch.manual_seed(0)
    sac = SAC(1, 1, SACConfig(hidden_sizes=[32, 32], learning_rate=3e-3, reward_scale=20.0))
    obs = torch.zeros(128, 1)
    for _ in range(400):
        action = torch.rand(128, 1) * 2 - 1
        sac.update(obs, action, -(action[:, 0] - 0.5) ** 2, obs, torch.ones(128))
    mean_action = sac.policy.sample(obs[:1], deterministic=True)["action"].item()
    assert mean_action == pytest.approx(0.5, abs=0.15)
