"""SAC v1: targets by hand, tanh-Gaussian log-probability, one update on tiny constant networks and against a
plain reference implementation, the critics frozen for the policy loss, the earlier weight layout refused."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from adaptive_mbrl.baselines.networks import TanhGaussianPolicy, tanh_gaussian_log_prob
from adaptive_mbrl.baselines.presets import SACConfig
from adaptive_mbrl.baselines.sac import SAC, q_target, v_target
from test_ensemble_layers import member_network  # pytest puts tests/ first on sys.path


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


def _constant(layers: list[tuple[torch.Tensor, torch.Tensor]], values: list[float]) -> None:
    """Every weight zero, member k's output bias ``values[k]``: member k outputs ``values[k]`` everywhere."""
    with torch.no_grad():
        for weight, bias in layers:
            weight.zero_()
            bias.zero_()
        layers[-1][1].copy_(torch.tensor(values).view(-1, 1, 1))


def test_update_uses_the_hand_computed_targets_on_constant_networks() -> None:
    cfg = SACConfig(hidden_sizes=[4], learning_rate=1e-12, gamma=0.9, reward_scale=5.0, alpha=0.0, tau=0.5)
    sac = SAC(2, 1, cfg)
    _constant(sac.q.layers(), [1.0, 2.0])
    _constant(sac.v.online_layers(), [0.5])
    _constant(sac.v.target_layers(), [3.0])
    obs = torch.randn(2, 2)
    stats = sac.update(obs, torch.zeros(2, 1), torch.tensor([1.0, 2.0]), torch.randn(2, 2), torch.tensor([0.0, 1.0]))
    # Q targets 5 + 0.9 * 3 = 7.7 and 10 (done); Q1 = 1, Q2 = 2
    assert stats["q_loss"] == pytest.approx(((1 - 7.7) ** 2 + (1 - 10) ** 2) / 2 + ((2 - 7.7) ** 2 + (2 - 10) ** 2) / 2,
                                            rel=1e-6)
    assert stats["q"] == pytest.approx(1.0, abs=1e-6)
    # V target = min(Q1, Q2) - 0 * log pi = 1; V = 0.5
    assert stats["v_loss"] == pytest.approx(0.25, rel=1e-5)
    # target V moved half-way to V (tau = 0.5): bias 3 -> 1.75
    assert sac.v.target(obs).detach().squeeze(-1) == pytest.approx(torch.full((2,), 1.75), abs=1e-5)


# --- the update against a plain reference implementation of SAC v1 ----------------------------------------

def _reference_update(nets: dict[str, nn.Sequential], batch: tuple[torch.Tensor, ...], noise: torch.Tensor,
                      cfg: SACConfig) -> tuple[dict[str, float], dict[str, list[torch.Tensor]]]:
    """SAC v1 as first written (separate networks q1, q2, v, v_target, policy; three Adam steps, then the
    Polyak step): returns the losses and each network's gradient from its own loss; updates ``nets``."""
    obs, action, reward, next_obs, done = batch
    optim = {k: torch.optim.Adam(nets[k].parameters(), lr=cfg.learning_rate) for k in ("q1", "q2", "v", "policy")}
    with torch.no_grad():
        target_q = reward * cfg.reward_scale + cfg.gamma * (1 - done) * nets["v_target"](next_obs).squeeze(-1)
    sa = torch.cat((obs, action), -1)
    q1, q2 = nets["q1"](sa).squeeze(-1), nets["q2"](sa).squeeze(-1)
    q_loss = ((q1 - target_q) ** 2).mean() + ((q2 - target_q) ** 2).mean()
    q_loss.backward()
    grads = {k: [p.grad.clone() for p in nets[k].parameters()] for k in ("q1", "q2")}
    optim["q1"].step()
    optim["q2"].step()
    mean, log_std = nets["policy"](obs).chunk(2, -1)
    log_std = log_std.clamp(-20, 2)
    pre_tanh = mean + log_std.exp() * noise
    new_action = torch.tanh(pre_tanh)
    log_prob = tanh_gaussian_log_prob(pre_tanh, mean, log_std)
    sa_new = torch.cat((obs, new_action), -1)
    q_new = torch.minimum(nets["q1"](sa_new), nets["q2"](sa_new)).squeeze(-1)
    v_loss = ((nets["v"](obs).squeeze(-1) - (q_new - cfg.alpha * log_prob).detach()) ** 2).mean()
    v_loss.backward()
    optim["v"].step()
    policy_loss = (cfg.alpha * log_prob - q_new).mean() + cfg.policy_reg * ((mean ** 2).mean() + (log_std ** 2).mean())
    policy_loss.backward()
    grads.update({k: [p.grad.clone() for p in nets[k].parameters()] for k in ("v", "policy")})
    optim["policy"].step()
    with torch.no_grad():
        for t, s in zip(nets["v_target"].parameters(), nets["v"].parameters()):
            t.lerp_(s, cfg.tau)
    return {"q_loss": q_loss.item(), "v_loss": v_loss.item(), "policy_loss": policy_loss.item()}, grads


def _as_reference(sac: SAC) -> dict[str, nn.Sequential]:
    return {"q1": member_network(sac.q.layers(), 0), "q2": member_network(sac.q.layers(), 1),
            "v": member_network(sac.v.online_layers()), "v_target": member_network(sac.v.target_layers()),
            "policy": member_network(sac.policy.body.layers())}


def test_update_matches_the_reference_sac_v1_losses_gradients_and_steps() -> None:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[8, 8], learning_rate=1e-2, gamma=0.9, tau=0.1, reward_scale=3.0, alpha=0.5,
                    policy_reg=0.01)
    sac = SAC(3, 2, cfg)
    with torch.no_grad():
        for _, buf in sac.v.named_buffers():
            buf.add_(0.05 * torch.randn_like(buf))               # a target V that differs from V
    nets = _as_reference(sac)
    obs, next_obs = torch.randn(16, 3), torch.randn(16, 3)
    batch = (obs, torch.rand(16, 2) * 2 - 1, torch.randn(16), next_obs, (torch.rand(16) < 0.3).float())
    torch.manual_seed(7)
    stats = sac.update(*batch)
    torch.manual_seed(7)
    noise = torch.randn(16, 2)                                    # the policy's one draw in the update
    ref_losses, ref_grads = _reference_update(nets, batch, noise, cfg)
    for key, value in ref_losses.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # gradients: each network's own loss only (the critics' from the critic loss, not the policy loss)
    got = {"q1": [(w.grad[0], b.grad[0, :, 0]) for w, b in sac.q.layers()],
           "q2": [(w.grad[1], b.grad[1, :, 0]) for w, b in sac.q.layers()],
           "v": [(w.grad[0], b.grad[0, :, 0]) for w, b in sac.v.online_layers()],
           "policy": [(w.grad[0], b.grad[0, :, 0]) for w, b in sac.policy.body.layers()]}
    for key, pairs in got.items():
        flat = [g for pair in pairs for g in pair]
        assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(flat, ref_grads[key])), key
    # after the step every network, the target V included, equals the reference's
    after = _as_reference(sac)
    for key, net in nets.items():
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(after[key].parameters(), net.parameters())), key


def test_only_the_critic_loss_reaches_the_critics_and_the_target_v_is_not_trained() -> None:
    torch.manual_seed(0)
    sac = SAC(3, 2, SACConfig(hidden_sizes=[8]))
    arrivals: list[torch.Tensor] = []
    hooks = [p.register_hook(arrivals.append) for p in sac.q.parameters()]
    sac.update(torch.randn(6, 3), torch.rand(6, 2) * 2 - 1, torch.randn(6), torch.randn(6, 3), torch.zeros(6))
    for hook in hooks:
        hook.remove()
    # one backward pass (the critic loss) reached each critic parameter: the policy loss used frozen critics
    assert len(arrivals) == len(list(sac.q.parameters()))
    assert all(not b.requires_grad for b in sac.v.buffers())
    trained = {id(p) for group in sac.v_optim.param_groups for p in group["params"]}
    assert trained == {id(p) for p in sac.v.parameters()} and not trained & {id(b) for b in sac.v.buffers()}


def test_weights_of_the_earlier_layout_are_refused_with_a_clear_error() -> None:
    sac = SAC(3, 2, SACConfig(hidden_sizes=[8]))
    old = {k: v for k, v in sac.state_dict().items() if k.startswith("policy.")}
    old.update({"q1.net.0.weight": torch.zeros(8, 5), "v_target.net.0.weight": torch.zeros(8, 3)})
    message = r"earlier layout \(networks q1, v_target at 'the top level': separate q1, q2, v, v_target modules"
    with pytest.raises(ValueError, match=message):
        sac.load_state_dict(old)
    sac.load_state_dict(sac.state_dict())                        # the current layout loads


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
