"""DynamicsModel: config, shapes, ensembles, functional calls, state loading."""
import pytest
import torch
from torch.func import functional_call

from adaptive_mbrl.config import ConfigError, from_dict
from adaptive_mbrl.models import (DynamicsModel, ModelConfig, ModelStateError, functional_loss, functional_predict,
                                  load_model_state)

O, A = 4, 2


def make(hidden=(16, 16), ensemble=1, context=0, seed=0, activation="silu"):
    cfg = from_dict(ModelConfig, {"hidden_sizes": list(hidden), "ensemble_size": ensemble,
                                  "context_dim": context, "activation": activation})
    return DynamicsModel(O, A, cfg, seed=seed)


def data(n=32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, O, generator=gen), torch.rand(n, A, generator=gen) * 2 - 1, torch.randn(n, O, generator=gen)


def test_config_defaults_and_validation():
    cfg = from_dict(ModelConfig, {})
    assert cfg.hidden_sizes == [200, 200, 200] and cfg.activation == "silu" and cfg.ensemble_size == 1
    with pytest.raises(ConfigError, match="activation"):
        from_dict(ModelConfig, {"activation": "gelu"})
    with pytest.raises(ConfigError, match=r"hidden_sizes\[1\]"):
        from_dict(ModelConfig, {"hidden_sizes": [8, 0]})
    with pytest.raises(ConfigError, match="ensemble_size"):
        from_dict(ModelConfig, {"ensemble_size": 0})
    with pytest.raises(ConfigError, match="learning_rate"):
        from_dict(ModelConfig, {"learning_rate": 0.0})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ModelConfig, {"layers": 3})


def test_single_model_shapes_and_predict_is_obs_plus_denormalised_delta():
    model = make()
    obs, act, nxt = data()
    model.fit_normalizers(obs, act, nxt)
    o3, a3 = obs.reshape(4, 8, O), act.reshape(4, 8, A)
    assert model(model.obs_norm.normalize(o3), model.act_norm.normalize(a3)).shape == (4, 8, O)
    pred = model.predict(o3, a3)
    assert pred.shape == (4, 8, O)
    delta_n = model(model.obs_norm.normalize(o3), model.act_norm.normalize(a3))
    torch.testing.assert_close(pred, o3 + delta_n * model.delta_norm.std + model.delta_norm.mean)
    # Broadcast: one observation against many actions.
    assert model.predict(obs[:1], act).shape == (32, O)


def test_ensemble_shapes_members_differ_and_batched_equals_per_member():
    model = make(ensemble=3)
    obs, act, nxt = data()
    model.fit_normalizers(obs, act, nxt)
    obs_n, act_n = model.obs_norm.normalize(obs), model.act_norm.normalize(act)
    out = model(obs_n, act_n)
    assert out.shape == (3, 32, O)
    assert not torch.allclose(out[0], out[1], atol=1e-3) and not torch.allclose(out[1], out[2], atol=1e-3)
    for e in range(3):  # the same member computed by hand, one matrix product at a time
        h = torch.cat((obs_n, act_n), -1)
        for i, layer in enumerate(model.layers):
            h = h @ layer.weight[e] + layer.bias[e, 0]
            h = torch.nn.functional.silu(h) if i < len(model.layers) - 1 else h
        torch.testing.assert_close(out[e], h, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(obs_n, act_n, member=e), h, rtol=1e-5, atol=1e-5)
    all_members = model.predict(obs, act, member="all")
    assert all_members.shape == (3, 32, O)
    torch.testing.assert_close(model.predict(obs, act), all_members.mean(0))
    torch.testing.assert_close(model.predict(obs, act, member=2), all_members[2])
    # Stacked inputs: member e sees row block e.
    stacked = model(obs_n.reshape(1, 32, O).expand(3, 32, O).flip(1), act_n.expand(3, 32, A).flip(1), stacked=True)
    torch.testing.assert_close(stacked, out.flip(1))
    assert model.loss(obs, act, nxt).shape == ()


def test_ensemble_loss_is_sum_of_member_losses():
    model = make(ensemble=2)
    obs, act, nxt = data()
    target = model.delta_norm.normalize(nxt - obs)
    out = model(model.obs_norm.normalize(obs), model.act_norm.normalize(act))
    expected = sum(((out[e] - target) ** 2).mean() for e in range(2))
    torch.testing.assert_close(model.loss(obs, act, nxt), expected)


def test_context_is_required_and_used():
    model = make(context=3)
    obs, act, _ = data()
    ctx = torch.randn(32, 3)
    assert model.predict(obs, act, ctx).shape == (32, O)
    assert not torch.allclose(model.predict(obs, act, ctx), model.predict(obs, act, ctx + 1.0))
    with pytest.raises(ValueError, match="context"):
        model.predict(obs, act)
    with pytest.raises(ValueError, match="context_dim = 0"):
        make().predict(obs, act, ctx)
    with pytest.raises(ValueError, match=r"obs \[\.\.\., 4\]"):
        model.predict(obs[:, :3], act, ctx)


def test_same_seed_same_weights():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_functional_call_with_modified_params_changes_predictions_and_gradients_flow():
    model = make()
    obs, act, nxt = data()
    model.fit_normalizers(obs, act, nxt)
    theta = dict(model.named_parameters())
    # forward is what torch.func.functional_call reaches.
    obs_n, act_n = model.obs_norm.normalize(obs), model.act_norm.normalize(act)
    torch.testing.assert_close(functional_call(model, theta, (obs_n, act_n)), model(obs_n, act_n))
    torch.testing.assert_close(functional_predict(model, theta, obs, act), model.predict(obs, act))
    torch.testing.assert_close(functional_loss(model, theta, obs, act, nxt), model.loss(obs, act, nxt))
    # GrBAL's inner step: phi = theta - alpha * grad L(theta); then a meta-loss through phi.
    inner = functional_loss(model, theta, obs[:16], act[:16], nxt[:16])
    grads = torch.autograd.grad(inner, list(theta.values()), create_graph=True)
    phi = {k: p - 0.1 * g for (k, p), g in zip(theta.items(), grads)}
    adapted = functional_predict(model, phi, obs[16:], act[16:])
    assert not torch.allclose(adapted, model.predict(obs[16:], act[16:]))
    assert functional_loss(model, phi, obs[:16], act[:16], nxt[:16]) < inner  # the step helps its own data
    meta = functional_loss(model, phi, obs[16:], act[16:], nxt[16:])
    meta_grads = torch.autograd.grad(meta, list(theta.values()))
    assert all(g is not None and torch.isfinite(g).all() for g in meta_grads)
    assert sum(g.abs().sum() for g in meta_grads) > 0
    # The model's own parameters were not modified.
    torch.testing.assert_close(model.predict(obs, act), functional_predict(model, theta, obs, act))


def test_functional_call_can_override_normaliser_statistics():
    model = make()
    obs, act, _ = data()
    shifted = {"delta_norm.mean": model.delta_norm.mean + 1.0}
    torch.testing.assert_close(functional_predict(model, shifted, obs, act), model.predict(obs, act) + 1.0)


def test_state_round_trip_and_mismatch_names_shapes(tmp_path):
    model = make(seed=0)
    model.fit_normalizers(*data())
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    other = make(seed=1)
    load_model_state(other, torch.load(path, weights_only=True))
    obs, act, _ = data()
    torch.testing.assert_close(other.predict(obs, act), model.predict(obs, act))
    wide = make(hidden=(32, 16))
    with pytest.raises(ModelStateError, match=r"layers\.0\.weight: saved \[1, 6, 16\], model \[1, 6, 32\]"):
        load_model_state(wide, model.state_dict())
    with pytest.raises(ModelStateError, match=r"layers\.3\.weight: missing"):
        load_model_state(make(hidden=(16, 16, 16)), model.state_dict())
    with pytest.raises(ModelStateError, match=r"\[3, 6, 16\]"):
        load_model_state(make(ensemble=3), model.state_dict())


def test_linear_model_without_hidden_layers():
    model = DynamicsModel(O, A, ModelConfig(hidden_sizes=[]))
    assert len(model.layers) == 1 and model.predict(*data()[:2]).shape == (32, O)


# Pinned before probabilistic ensembles were added: the deterministic path must not move.
PINNED_CHECKPOINT_PREDICTIONS = {
    "mb": [[0.2645716667175293, -0.1773301064968109, -0.16635647416114807, -0.5278308391571045],
           [-0.6716751456260681, 0.09998360276222229, 0.9322165250778198, 1.8702137470245361],
           [-0.6559723615646362, 1.7355080842971802, 0.36581695079803467, 1.4300436973571777]],
    "grbal": [[0.26348358392715454, -0.1594468355178833, -0.381419837474823, -0.48820000886917114],
              [-0.5808699131011963, -0.3136240243911743, 0.9671097993850708, 1.123438835144043],
              [-0.8928266763687134, 0.4950825572013855, 1.1788877248764038, 0.44202476739883423]],
}


@pytest.mark.parametrize("name", sorted(PINNED_CHECKPOINT_PREDICTIONS))
def test_shipped_checkpoints_load_and_predict_the_pinned_values(name):
    from pathlib import Path

    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    path = Path(__file__).parents[1] / "controllers" / "checkpoints" / "half_cheetah" / f"{name}.pt"
    payload = load_checkpoint(path)
    model = DynamicsModel(17, 6, from_dict(ModelConfig, payload["preset"]["model"]), seed=0)
    load_model_state(model, payload["model_state"])
    gen = torch.Generator().manual_seed(123)
    obs, act = torch.randn(3, 17, generator=gen), torch.rand(3, 6, generator=gen) * 2 - 1
    # 1e-5: float32 sums in another order (AVX-512 against AVX2 kernels) move the last bits, about 1e-6 on
    # these values of order 1; any change of the weights or the normalisers moves them far more.
    torch.testing.assert_close(model.predict(obs, act)[:, :4], torch.tensor(PINNED_CHECKPOINT_PREDICTIONS[name]),
                               rtol=0.0, atol=1e-5)


# --- probabilistic ensembles (PETS) ------------------------------------------------------------------------
def make_pe(hidden=(16, 16), ensemble=3, elites=0, seed=0, **extra):
    cfg = from_dict(ModelConfig, {"hidden_sizes": list(hidden), "ensemble_size": ensemble, "probabilistic": True,
                                  "elites": elites, **extra})
    return DynamicsModel(O, A, cfg, seed=seed)


def test_probabilistic_config_validation_and_deterministic_state_keys_unchanged():
    cfg = from_dict(ModelConfig, {})
    assert (cfg.probabilistic, cfg.bootstrap, cfg.elites, cfg.logvar_penalty) == (False, False, 0, 0.01)
    assert (cfg.max_logvar_init, cfg.min_logvar_init) == (0.5, -10.0)
    with pytest.raises(ConfigError, match=r"elites \(4\) must not exceed ensemble_size \(3\)"):
        from_dict(ModelConfig, {"ensemble_size": 3, "elites": 4})
    with pytest.raises(ConfigError, match="min_logvar_init"):
        from_dict(ModelConfig, {"min_logvar_init": 1.0, "max_logvar_init": 1.0})
    with pytest.raises(ConfigError, match="logvar_penalty"):
        from_dict(ModelConfig, {"logvar_penalty": -0.1})
    keys = set(make(ensemble=3).state_dict())
    assert keys == {f"{n}_norm.{s}" for n in ("obs", "act", "delta") for s in ("mean", "std")} | {
        f"layers.{i}.{w}" for i in range(3) for w in ("weight", "bias")}
    pe = make_pe(elites=2)
    assert pe.layers[-1].weight.shape == (3, 16, 2 * O)  # mean and raw log-variance per member
    assert pe.max_logvar.shape == (O,) and pe.elite_members.tolist() == [0, 1]
    assert {"max_logvar", "min_logvar", "elite_members"} <= set(pe.state_dict())


def test_logvar_stays_inside_learned_soft_bounds():
    model = make_pe(ensemble=2)
    obs, act, _ = data()
    obs_n, act_n = model.obs_norm.normalize(obs), model.act_norm.normalize(act)
    with torch.no_grad():
        model.layers[-1].weight[..., O:] *= 1e4  # raw log-variances far outside [-10, 0.5] both ways
    mean, logvar = model.gaussian(obs_n, act_n)
    assert mean.shape == logvar.shape == (2, 32, O)
    torch.testing.assert_close(mean, model(obs_n, act_n))  # forward is the Gaussian's mean
    assert (logvar >= -10.0).all() and (logvar <= 0.5 + 1e-4).all()  # equal only by float32 rounding
    raw = model._network(obs_n, act_n, None, None, False, None)[..., O:]
    assert (logvar[raw > 100] > 0.49).all() and (logvar[raw < -100] < -9.99).all()  # saturates at the bounds
    with pytest.raises(ValueError, match="probabilistic"):
        make().gaussian(obs_n, act_n)


def test_nll_loss_formula_and_bound_penalty_gradient():
    model = make_pe(ensemble=2)
    obs, act, nxt = data()
    model.fit_normalizers(obs, act, nxt)
    target = model.delta_norm.normalize(nxt - obs)
    mean, logvar = model.gaussian(model.obs_norm.normalize(obs), model.act_norm.normalize(act))
    per_member = [((mean[e] - target) ** 2 * torch.exp(-logvar[e]) + logvar[e]).mean() for e in range(2)]
    penalty = 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
    loss = model.loss(obs, act, nxt)
    torch.testing.assert_close(loss, sum(per_member) + penalty)
    mse, nll = model.member_errors(obs, act, nxt)
    torch.testing.assert_close(nll, torch.stack(per_member).detach())
    torch.testing.assert_close(mse, ((mean - target) ** 2).mean(dim=(1, 2)).detach())
    # The bound penalty adds exactly +0.01 to d loss / d max_logvar and -0.01 to d loss / d min_logvar.
    grads = {}
    for weight in (0.01, 0.0):
        other = make_pe(ensemble=2, logvar_penalty=weight)
        other.load_state_dict(model.state_dict())
        with torch.no_grad():
            other.layers[-1].weight[..., O:] = 0.0
            other.layers[-1].bias[..., O:] = -3.0
            other.max_logvar.fill_(3.0)  # the optimum below, exp(logvar) ~ 1, lies well inside the bounds
        other.loss(obs, act, nxt).backward()
        grads[weight] = (other.max_logvar.grad, other.min_logvar.grad, other.layers[-1].bias.grad)
    torch.testing.assert_close(grads[0.01][0] - grads[0.0][0], torch.full((O,), 0.01))
    torch.testing.assert_close(grads[0.01][1] - grads[0.0][1], torch.full((O,), -0.01))
    # Descending the NLL in a constant log-variance alone finds the variance of the errors, per member and dim.
    model = other
    err2 = ((mean.detach() - target) ** 2).mean(1)  # [E, o]
    opt = torch.optim.Adam([model.layers[-1].bias], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        model.loss(obs, act, nxt).backward()
        model.layers[-1].bias.grad[..., :O] = 0.0  # keep the means
        opt.step()
    _, fitted = model.gaussian(model.obs_norm.normalize(obs[:1]), model.act_norm.normalize(act[:1]))
    torch.testing.assert_close(fitted[:, 0].exp(), err2, rtol=0.02, atol=0)


def test_sampled_predictions_follow_the_members_gaussian_in_raw_units():
    model = make_pe(ensemble=2)
    obs, act, nxt = data()
    model.fit_normalizers(obs, act, 5.0 * nxt)  # delta std ~ 5: the variance must be scaled by std^2
    x, u = obs[:1].expand(20000, O), act[:1].expand(20000, A)
    draws = model.predict(x, u, member=1, sample=torch.Generator().manual_seed(0))
    again = model.predict(x, u, member=1, sample=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)  # seeded: reproducible
    mean, var = model.predict_distribution(obs[:1], act[:1], member=1)
    torch.testing.assert_close(model.predict(obs[:1], act[:1], member=1), mean)  # no sample: the mean
    torch.testing.assert_close(draws.mean(0, keepdim=True), mean, atol=4 * (var.sqrt().max() / 141).item(), rtol=0)
    torch.testing.assert_close(draws.var(0, keepdim=True), var, rtol=0.05, atol=0)
    assert var.max() > 5.0  # exp(logvar) ~ 1 at init, times std^2 ~ 25
    with pytest.raises(ValueError, match="one member per prediction"):
        model.predict(obs, act, sample=True)
    assert model.predict(obs, act, member="all", sample=True).shape == (2, 32, O)
    deterministic = make(ensemble=1)  # sample is ignored by a deterministic model
    assert torch.equal(deterministic.predict(obs, act, sample=torch.Generator().manual_seed(0)),
                       deterministic.predict(obs, act))


def test_mixture_moments_and_elites_set_the_ensemble_mean():
    model = make_pe(ensemble=3, elites=2)
    obs, act, _ = data()
    means, variances = model.predict_distribution(obs, act, member="all")
    model.set_elites([2, 0])
    assert model.elite_members.tolist() == [0, 2]
    mix_mean, mix_var = model.predict_distribution(obs, act)
    keep = means[[0, 2]]
    torch.testing.assert_close(mix_mean, keep.mean(0))
    torch.testing.assert_close(mix_var, variances[[0, 2]].mean(0) + keep.var(0, unbiased=False))
    torch.testing.assert_close(model.predict(obs, act), keep.mean(0))  # the mean uses the elites only
    with pytest.raises(ValueError, match="distinct members"):
        model.set_elites([1, 1])
    with pytest.raises(ValueError, match="distinct members"):
        model.set_elites([0, 3])
    with pytest.raises(ValueError, match="no elites"):
        make_pe(ensemble=3).set_elites([0])
    other = make_pe(ensemble=3, elites=2, seed=5)
    load_model_state(other, model.state_dict())
    assert other.elite_members.tolist() == [0, 2]


def test_stacked_member_subset_equals_those_members():
    model = make_pe(ensemble=4)
    obs, act, _ = data()
    obs_n, act_n = model.obs_norm.normalize(obs), model.act_norm.normalize(act)
    subset = torch.tensor([3, 1])
    stacked = model.gaussian(obs_n.reshape(2, 16, O), act_n.reshape(2, 16, A), stacked=True, members=subset)
    for k, e in enumerate(subset.tolist()):
        for got, want in zip(stacked, model.gaussian(obs_n[16 * k:16 * (k + 1)], act_n[16 * k:16 * (k + 1)],
                                                     member=e)):
            torch.testing.assert_close(got[k], want)
    with pytest.raises(ValueError, match="stacked"):
        model(obs_n, act_n, members=subset)


def test_the_mean_of_an_ensemble_with_elites_evaluates_only_the_elites() -> None:
    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=5, probabilistic=True, elites=3, context_dim=2)
    m = DynamicsModel(4, 2, cfg, seed=0).eval()
    m.set_elites([1, 3, 4])
    obs, act, ctx = torch.randn(7, 3, 4), torch.randn(7, 3, 2), torch.randn(7, 3, 2)
    rows = []
    m.layers[0].register_forward_hook(lambda mod, args, out: rows.append(tuple(out.shape)))
    with torch.no_grad():
        mean = m.predict(obs, act, ctx)
        assert rows == [(3, 21, 16)]  # one stacked call over the 3 elites, not all 5 members
        every = m.predict(obs, act, ctx, member="all")
    torch.testing.assert_close(mean, every[[1, 3, 4]].mean(0))
