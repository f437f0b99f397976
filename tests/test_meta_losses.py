"""Meta-objectives: exact second-order GrBAL meta-gradient (vs. finite differences), first order, Meta-SGD."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from adaptive_mbrl.adaptation import AdapterConfig, make_adapter
from adaptive_mbrl.adaptation.meta_losses import (grbal_meta_loss, inner_names, inner_update, model_params,
                                                  random_window_mask, split_segments)
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig, functional_loss

OBS, ACT, PAST, FUTURE = 2, 1, 4, 3


def _tiny(seed: int = 0) -> DynamicsModel:
    """A float64 2-input-layer tanh net (smooth, so second derivatives are non-trivial)."""
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[5], activation="tanh"), seed=seed).double()
    with torch.no_grad():  # non-trivial normalisers
        model.obs_norm.mean.copy_(torch.tensor([0.1, -0.2]))
        model.obs_norm.std.copy_(torch.tensor([1.5, 0.7]))
        model.delta_norm.std.copy_(torch.tensor([0.3, 0.5]))
    return model


def _segments(batch: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, PAST + FUTURE, OBS, generator=g, dtype=torch.float64)
    act = torch.rand(batch, PAST + FUTURE, ACT, generator=g, dtype=torch.float64) * 2 - 1
    nxt = obs + 0.3 * torch.randn(batch, PAST + FUTURE, OBS, generator=g, dtype=torch.float64)
    return obs, act, nxt


def _flat_grad(model: DynamicsModel, lr: float, first_order: bool, steps: int = 1) -> torch.Tensor:
    model.zero_grad()
    loss, _ = grbal_meta_loss(model, *_segments(), PAST, lr, steps, first_order)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _meta_loss_value(model: DynamicsModel, lr: float, steps: int = 1) -> float:
    return grbal_meta_loss(model, *_segments(), PAST, lr, steps)[0].item()


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_central_finite_differences(steps: int) -> None:
    model, lr, eps = _tiny(), 0.5, 1e-6
    analytic = _flat_grad(model, lr, first_order=False, steps=steps)
    numeric = []
    params = list(model.parameters())
    with torch.no_grad():
        for p in params:
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = _meta_loss_value(model, lr, steps)
                flat[i] = old - eps
                down = _meta_loss_value(model, lr, steps)
                flat[i] = old
                numeric.append((up - down) / (2 * eps))
    numeric_t = torch.tensor(numeric, dtype=torch.float64)
    assert analytic.abs().max() > 1e-3
    torch.testing.assert_close(analytic, numeric_t, rtol=1e-5, atol=1e-8)


def test_first_order_drops_exactly_the_second_order_terms() -> None:
    """FOMAML's meta-gradient is grad_phi L(phi; future) (d phi / d theta = I): check it, and that it
    differs from the exact one by a clear margin."""
    model, lr = _tiny(), 0.5
    second = _flat_grad(model, lr, first_order=False)
    first = _flat_grad(model, lr, first_order=True)
    (po, pa, pn), (fo, fa, fn) = split_segments(*_segments(), PAST)
    expected = torch.zeros_like(first)
    for b in range(po.shape[0]):
        theta = {k: v.detach() for k, v in model_params(model).items()}
        phi = {k: v.detach().requires_grad_() for k, v in
               inner_update(model, theta, po[b], pa[b], pn[b], lr).items()}
        grads = torch.autograd.grad(functional_loss(model, phi, fo[b], fa[b], fn[b]), list(phi.values()))
        expected += torch.cat([g.flatten() for g in grads]) / po.shape[0]
    torch.testing.assert_close(first, expected, rtol=1e-9, atol=1e-12)
    assert (first - second).norm() > 0.05 * second.norm()
    # With a zero inner step both are the plain gradient of the loss on the future transitions.
    torch.testing.assert_close(_flat_grad(model, 0.0, False), _flat_grad(model, 0.0, True))


def test_inner_update_is_one_sgd_step_on_the_window_loss() -> None:
    model, lr = _tiny(), 0.1
    (po, pa, pn), _ = split_segments(*_segments(), PAST)
    phi = inner_update(model, model_params(model), po[0], pa[0], pn[0], lr)
    model.zero_grad()
    model.loss(po[0], pa[0], pn[0]).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(phi[name], p - lr * p.grad)
    # An empty window (start of an episode) leaves the parameters as they are.
    same = inner_update(model, model_params(model), po[0, :0], pa[0, :0], pn[0, :0], lr)
    assert all(same[k] is v for k, v in model_params(model).items())


def test_meta_sgd_rates_get_gradients_and_change() -> None:
    model = _tiny().float()
    adapter = make_adapter(model, AdapterConfig(kind="grbal", window=PAST, learning_rate=0.3, learn_inner_lr=True))
    rates = list(adapter.learned.parameters())
    assert rates and all(torch.all(r == 0.3) for r in rates)
    before = [r.detach().clone() for r in rates]
    optimizer = torch.optim.Adam([*model.parameters(), *rates], lr=1e-2)
    obs, act, nxt = (t.float() for t in _segments(batch=6))
    for first_order in (False, True):  # Meta-SGD rates learn in both modes (d phi / d alpha = -grad)
        optimizer.zero_grad()
        loss, _ = adapter.meta_loss(obs, act, nxt, PAST, first_order=first_order)
        loss.backward()
        assert all(r.grad is not None and r.grad.abs().sum() > 0 for r in rates)
        optimizer.step()
    assert all(not torch.equal(r, b) for r, b in zip(rates, before))
    # Per-entry rates differ from each other after training (not one shared scalar).
    assert torch.cat([r.detach().flatten() for r in rates]).std() > 0


def test_random_window_mask_keeps_the_most_recent_transitions() -> None:
    mask = random_window_mask(200, 16, 0.5, torch.Generator().manual_seed(0))
    assert mask.shape == (200, 16) and mask.dtype == torch.bool
    visible = mask.sum(1)
    assert (visible == 16).float().mean().item() == pytest.approx(0.5, abs=0.12)
    assert visible.min() == 0
    for row, n in zip(mask, visible):  # visible ones are the last n
        assert row[16 - int(n):].all() and not row[:16 - int(n)].any()


# --- ensembles ----------------------------------------------------------------------------------------------
def _ensemble(members: int = 2, probabilistic: bool = False, seed: int = 0) -> DynamicsModel:
    """``_tiny`` as an ensemble of ``members`` (float64, tanh, non-trivial normalisers)."""
    config = ModelConfig(hidden_sizes=[5], activation="tanh", ensemble_size=members, probabilistic=probabilistic,
                         max_logvar_init=0.3, min_logvar_init=-2.0)
    model = DynamicsModel(OBS, ACT, config, seed=seed).double()
    with torch.no_grad():
        model.obs_norm.mean.copy_(torch.tensor([0.1, -0.2]))
        model.obs_norm.std.copy_(torch.tensor([1.5, 0.7]))
        model.delta_norm.std.copy_(torch.tensor([0.3, 0.5]))
    return model


def _member(model: DynamicsModel, e: int) -> DynamicsModel:
    """Member ``e`` of an ensemble as a single network with the same weights, normalisers and bounds."""
    config = dataclasses.replace(model.config, ensemble_size=1, elites=0)
    single = DynamicsModel(OBS, ACT, config).double()
    single.load_state_dict({k: v[e:e + 1] if k.startswith("layers.") else v
                            for k, v in model.state_dict().items() if k != "elite_members"})
    return single


def _per_member_segments(members: int, batch: int = 3) -> tuple[torch.Tensor, ...]:
    return tuple(t.reshape(members, batch, *t.shape[1:]) for t in _segments(batch=members * batch, seed=4))


@pytest.mark.parametrize("probabilistic, per_member, steps", [(False, False, 1), (True, True, 1), (True, False, 2)])
def test_ensemble_second_order_meta_gradient_matches_central_finite_differences(probabilistic: bool,
                                                                                 per_member: bool, steps: int) -> None:
    """E = 2 members, adapted in one batched call: the exact meta-gradient (MSE, or the Gaussian NLL with
    its bound penalty for a probabilistic ensemble; shared or per-member segments) w.r.t. every weight of
    every member and the log-variance bounds equals central finite differences."""
    model, lr, eps = _ensemble(2, probabilistic), 0.3, 1e-6
    segments = _per_member_segments(2) if per_member else _segments()

    def value() -> torch.Tensor:
        return grbal_meta_loss(model, *segments, PAST, lr, steps)[0]

    model.zero_grad()
    value().backward()
    analytic = torch.cat([p.grad.flatten() for p in model.parameters()])
    numeric = []
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = value().item()
                flat[i] = old - eps
                down = value().item()
                flat[i] = old
                numeric.append((up - down) / (2 * eps))
    numeric_t = torch.tensor(numeric, dtype=torch.float64)
    assert analytic.abs().max() > 1e-3
    if probabilistic:  # the bounds get a meta-gradient (they shape the NLL), though the inner step keeps them
        assert model.max_logvar.grad.abs().max() > 1e-4
    torch.testing.assert_close(analytic, numeric_t, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("per_member", [False, True])
def test_ensemble_meta_loss_is_the_sum_of_its_members_meta_losses(per_member: bool) -> None:
    """One batched call over E = 3 members gives what E separate single-network meta-losses give (each member
    adapted on its own windows), so the members stay independent learners."""
    model = _ensemble(3)
    segments = _per_member_segments(3) if per_member else _segments()
    loss, prior = grbal_meta_loss(model, *segments, PAST, 0.4)
    parts = [grbal_meta_loss(_member(model, e), *(t[e] if per_member else t for t in segments), PAST, 0.4)
             for e in range(3)]
    torch.testing.assert_close(loss, sum(p[0] for p in parts))
    torch.testing.assert_close(prior, sum(p[1] for p in parts))


def test_probabilistic_inner_step_is_an_nll_step_that_keeps_the_bounds() -> None:
    model = _ensemble(2, probabilistic=True)
    (po, pa, pn), _ = split_segments(*_segments(), PAST)
    theta = model_params(model)
    phi = inner_update(model, theta, po[0], pa[0], pn[0], 0.1)
    assert phi["max_logvar"] is theta["max_logvar"] and phi["min_logvar"] is theta["min_logvar"]
    assert inner_names(model) == [n for n in theta if "logvar" not in n]
    model.zero_grad()
    model.loss(po[0], pa[0], pn[0]).backward()  # the Gaussian NLL (+ penalty) of every member
    for name in inner_names(model):
        torch.testing.assert_close(phi[name], theta[name] - 0.1 * model.get_parameter(name).grad)


def test_per_member_segments_must_match_the_ensemble() -> None:
    with pytest.raises(ValueError, match="ensemble_size = 2"):
        grbal_meta_loss(_ensemble(2), *_per_member_segments(3), PAST, 0.1)


def test_mse_inner_step_of_a_probabilistic_model_steps_on_the_mean_alone() -> None:
    """``mse=True``: the step is an SGD step on the squared error of the predicted mean, blind to the
    predicted variance (scaling the log-variance bounds does not change it), unlike the NLL step."""
    model = _ensemble(2, probabilistic=True)
    (po, pa, pn), _ = split_segments(*_segments(), PAST)
    theta = model_params(model)
    phi = inner_update(model, theta, po[0], pa[0], pn[0], 0.1, mse=True)
    model.zero_grad()
    obs_n, act_n = model.obs_norm.normalize(po[0]), model.act_norm.normalize(pa[0])
    mean = model.gaussian(obs_n, act_n)[0]
    target = model.delta_norm.normalize(pn[0] - po[0])
    (mean - target).square().reshape(2, -1).mean(1).sum().backward()
    for name in inner_names(model):
        torch.testing.assert_close(phi[name], theta[name] - 0.1 * model.get_parameter(name).grad)
    nll = inner_update(model, theta, po[0], pa[0], pn[0], 0.1)
    assert any(not torch.allclose(nll[n], phi[n]) for n in inner_names(model))
    with torch.no_grad():
        model.max_logvar.mul_(0.5)
        model.min_logvar.mul_(2.0)
    again = inner_update(model, model_params(model), po[0], pa[0], pn[0], 0.1, mse=True)
    for name in inner_names(model):
        torch.testing.assert_close(again[name], phi[name])
    # a deterministic model's loss is already the squared error: mse changes nothing
    det = _ensemble(2, probabilistic=False)
    torch.testing.assert_close(det.loss(po[0], pa[0], pn[0], mse=True), det.loss(po[0], pa[0], pn[0]))


def test_mse_inner_meta_loss_is_still_the_model_loss_on_the_future() -> None:
    """With a zero step size the inner loss does not matter: both meta-losses are the prior's NLL on the
    future transitions; with a step they differ."""
    model = _ensemble(2, probabilistic=True)
    segments = _segments()
    torch.testing.assert_close(grbal_meta_loss(model, *segments, PAST, 0.0, inner_mse=True)[0],
                               grbal_meta_loss(model, *segments, PAST, 0.0)[0])
    assert not torch.allclose(grbal_meta_loss(model, *segments, PAST, 0.3, inner_mse=True)[0],
                              grbal_meta_loss(model, *segments, PAST, 0.3)[0])
