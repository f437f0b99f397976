"""GrBAL adapter: adaptation lowers the error on a changed system, reset restores the prior, the controller's
window, short windows, batched prediction, and a meta-trained prior adapting better than a plain MB model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.adaptation import AdapterConfig, make_adapter
from adaptive_mbrl.adaptation.grbal import GrBALAdapter
from adaptive_mbrl.config import from_dict
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.models.fitting import fit
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.training.meta_train import make_meta_optimizer

OBS, ACT = 2, 1


def _system(n_tasks: int, steps: int, gains: np.ndarray, seed: int) -> tuple[torch.Tensor, ...]:
    """Trajectories ``[n_tasks, steps, ...]`` of ``s' = A s + g * b a`` with one gain ``g`` per task (sign and
    size of the actuation change between tasks; the drift ``A`` is shared)."""
    g = torch.Generator().manual_seed(seed)
    a_mat = torch.tensor([[0.95, 0.1], [-0.1, 0.95]])
    b_vec = torch.tensor([0.0, 1.0])
    obs = torch.zeros(n_tasks, steps, OBS)
    act = torch.rand(n_tasks, steps, ACT, generator=g) * 2 - 1
    nxt = torch.zeros_like(obs)
    state = torch.randn(n_tasks, OBS, generator=g)
    gain = torch.as_tensor(gains, dtype=torch.float32)[:, None]
    for t in range(steps):
        obs[:, t] = state
        state = state @ a_mat.T + gain * act[:, t] * b_vec + 0.01 * torch.randn(n_tasks, OBS, generator=g)
        nxt[:, t] = state
    return obs, act, nxt


def _model(seed: int = 0) -> DynamicsModel:
    return DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[32, 32], learning_rate=3e-3), seed=seed)


def _config(**kw) -> AdapterConfig:
    return AdapterConfig(**{"kind": "grbal", "window": 16, "steps": 1, "learning_rate": 0.1, **kw})


@pytest.fixture(scope="module")
def nominal_prior() -> DynamicsModel:
    """A plain model fitted on the nominal system (gain 1)."""
    torch.manual_seed(0)
    obs, act, nxt = _system(8, 100, np.ones(8), seed=0)
    model = _model()
    fit(model, obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS), epochs=60,
        generator=torch.Generator().manual_seed(0))
    return model


def test_adapt_on_a_changed_linear_system_lowers_the_prediction_error(nominal_prior: DynamicsModel) -> None:
    adapter = make_adapter(nominal_prior, _config(learning_rate=0.5))
    assert isinstance(adapter, GrBALAdapter)
    obs, act, nxt = (t[0] for t in _system(1, 216, np.array([0.4]), seed=3))
    window, future = (obs[:16], act[:16], nxt[:16]), (obs[16:], act[16:], nxt[16:])
    with torch.no_grad():
        before = nominal_prior.loss(*future).item()
    adapter.adapt(*window)
    with torch.no_grad():
        after = adapter.adapted.loss(*future).item()
        pred_err = (adapter.predict(*future[:2]) - future[2]).square().mean().item()
        prior_err = (nominal_prior.predict(*future[:2]) - future[2]).square().mean().item()
    assert after < 0.8 * before
    assert pred_err < 0.8 * prior_err


def test_reset_restores_the_prior_exactly_and_adapt_restarts_from_it(nominal_prior: DynamicsModel) -> None:
    prior_state = {k: v.clone() for k, v in nominal_prior.state_dict().items()}
    adapter = make_adapter(nominal_prior, _config())
    obs, act, nxt = (t[0] for t in _system(1, 64, np.array([-1.0]), seed=4))
    adapter.adapt(obs[:16], act[:16], nxt[:16])
    once = {k: v.clone() for k, v in adapter.adapted.state_dict().items()}
    assert any(not torch.equal(once[k], prior_state[k]) for k in prior_state)
    adapter.adapt(obs[16:32], act[16:32], nxt[16:32])
    adapter.adapt(obs[:16], act[:16], nxt[:16])  # phi always starts from theta: same as adapting once
    for k, v in adapter.adapted.state_dict().items():
        assert torch.equal(v, once[k]), k
    adapter.reset()
    for k, v in adapter.adapted.state_dict().items():
        assert torch.equal(v, prior_state[k]), k
    for k, v in nominal_prior.state_dict().items():  # the prior itself never moves
        assert torch.equal(v, prior_state[k]), k
    query = torch.randn(5, 7, OBS), torch.rand(5, 7, ACT)
    assert torch.equal(adapter.predict(*query), nominal_prior.predict(*query))


def test_short_and_empty_windows(nominal_prior: DynamicsModel) -> None:
    """At an episode's start the window holds fewer than M transitions: adapt on what there is."""
    adapter = make_adapter(nominal_prior, _config())
    obs, act, nxt = (t[0] for t in _system(1, 8, np.array([-1.0]), seed=5))
    adapter.adapt(obs[:0], act[:0], nxt[:0])
    query = torch.randn(4, OBS), torch.rand(4, ACT)
    assert torch.equal(adapter.predict(*query), nominal_prior.predict(*query))
    adapter.adapt(obs[:3], act[:3], nxt[:3])
    with torch.no_grad():
        assert adapter.adapted.loss(obs[:3], act[:3], nxt[:3]) < nominal_prior.loss(obs[:3], act[:3], nxt[:3])


def test_batch_predict_matches_each_adapter(nominal_prior: DynamicsModel) -> None:
    adapters = [make_adapter(nominal_prior, _config()) for _ in range(3)]
    data = _system(3, 16, np.array([-1.0, 0.5, 2.0]), seed=6)
    for e in range(2):  # the third keeps the prior
        adapters[e].adapt(data[0][e], data[1][e], data[2][e])
    obs, act = torch.randn(3, 11, OBS), torch.rand(3, 11, ACT)
    with torch.inference_mode():
        batched = GrBALAdapter.batch_predict(adapters)(obs, act)
    for e, adapter in enumerate(adapters):
        torch.testing.assert_close(batched[e], adapter.predict(obs[e], act[e]), rtol=1e-5, atol=1e-6)


def test_meta_trained_prior_adapts_better_than_a_plain_model_on_held_out_tasks() -> None:
    """Tasks: the actuation gain is drawn from {-1, -0.5, 0.5, 1} in training; held-out gains +-0.75, +-1.5.
    A plain MB model trained on all the data averages the tasks (and their signs); the GrBAL prior, meta-
    trained on the same data, is fast to adapt: after one inner step on 16 transitions its error on the next
    16 is lower than that of the MB model after the same step (and than the MB model unadapted)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gains = rng.choice([-1.0, -0.5, 0.5, 1.0], 64)
    obs, act, nxt = _system(64, 100, gains, seed=7)
    past, future, lr = 16, 16, 0.5

    mb = _model(seed=1)
    fit(mb, obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS), epochs=40,
        generator=torch.Generator().manual_seed(1))

    meta = _model(seed=1)
    meta.fit_normalizers(obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS))
    adapter = make_adapter(meta, _config(learning_rate=lr))
    optimizer = make_meta_optimizer(meta, adapter, 3e-3)
    for _ in range(600):
        task = torch.as_tensor(rng.integers(0, 64, 16))
        start = torch.as_tensor(rng.integers(0, 100 - past - future, 16))
        rows = start[:, None] + torch.arange(past + future)
        seg = [t[task[:, None], rows] for t in (obs, act, nxt)]
        loss, _ = adapter.meta_loss(*seg, past)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    test_gains = np.array([0.75, -0.75, 1.5, -1.5] * 5)
    t_obs, t_act, t_nxt = _system(len(test_gains), past + future, test_gains, seed=8)

    def post_adaptation_loss(model: DynamicsModel, steps: int) -> float:
        ad = make_adapter(model, _config(learning_rate=lr, steps=steps))
        total = 0.0
        for b in range(len(test_gains)):
            ad.adapt(t_obs[b, :past], t_act[b, :past], t_nxt[b, :past])
            with torch.no_grad():
                pred = ad.predict(t_obs[b, past:], t_act[b, past:])
            total += (pred - t_nxt[b, past:]).square().mean().item()
        return total / len(test_gains)

    mb_plain, mb_adapted = post_adaptation_loss(mb, 0), post_adaptation_loss(mb, 1)
    meta_prior, meta_adapted = post_adaptation_loss(meta, 0), post_adaptation_loss(meta, 1)
    print(f"held-out one-step MSE: MB {mb_plain:.4f}, MB+1 step {mb_adapted:.4f}, "
          f"GrBAL prior {meta_prior:.4f}, GrBAL adapted {meta_adapted:.4f}")
    assert meta_adapted < 0.5 * meta_prior  # adaptation is what the meta-trained prior is for
    assert meta_adapted < 0.6 * mb_adapted
    assert meta_adapted < 0.6 * mb_plain


def test_controller_adapts_grbal_from_its_window_oldest_first() -> None:
    """Through the controller: the window passed to adapt() is exactly the last M transitions, and the
    adapted parameters equal an inner step from the prior on exactly those."""
    env = am.make("cartpole", seed=0)
    model = DynamicsModel(5, 1, ModelConfig(hidden_sizes=[16]), seed=0)
    preset = from_dict(ControllerPreset, {
        "name": "tiny_grbal", "model": {"hidden_sizes": [16]},
        "adapter": {"kind": "grbal", "window": 4, "steps": 1, "learning_rate": 0.05},
        "planner": {"kind": "cem", "samples": 16, "horizon": 3, "iterations": 1, "elites": 2}}, source="test")
    ctrl = AdaptiveController(model, preset, env.reward_fn, env.termination_fn, seed=0)
    ctrl.reset()
    obs, _ = env.reset(seed=1)
    transitions = []
    for _ in range(6):
        action = ctrl.act(obs)
        next_obs, *_ = env.step(action)
        ctrl.observe(obs, action, next_obs)
        transitions.append((obs, action, next_obs))
        obs = next_obs
    last = [torch.as_tensor(np.stack(c), dtype=torch.float32) for c in zip(*transitions[-4:])]
    reference = make_adapter(model, preset.adapter)
    reference.adapt(*last)
    for k, v in reference.adapted.state_dict().items():
        torch.testing.assert_close(ctrl.adapter.adapted.state_dict()[k], v)
    ctrl.reset()
    for k, v in model.state_dict().items():
        assert torch.equal(ctrl.adapter.adapted.state_dict()[k], v)
    env.close()


def _window_and_future(gain: float) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    obs, act, nxt = (t[0] for t in _system(1, 116, np.array([gain]), seed=5))
    return (obs[:16], act[:16], nxt[:16]), (obs[16:], act[16:], nxt[16:])


def test_backtracking_shrinks_an_overshooting_step_until_the_window_loss_drops(nominal_prior: DynamicsModel) -> None:
    """A step size far too large (what a meta-learned rate meets on dynamics far outside training) makes
    the unguarded step raise the window's own loss and wreck the prediction; backtracking keeps a
    fraction of the step that lowers the window loss, or the prior. It bounds the damage; it does not
    promise a better model than the prior (16 transitions can still mislead a small step)."""
    window, future = _window_and_future(-1.0)
    plain = make_adapter(nominal_prior, _config(learning_rate=50.0))
    guarded = make_adapter(nominal_prior, _config(learning_rate=50.0, backtracking=12))
    plain.adapt(*window)
    guarded.adapt(*window)
    with torch.no_grad():
        prior_window, prior_future = nominal_prior.loss(*window).item(), nominal_prior.loss(*future).item()
        assert plain.adapted.loss(*window).item() > prior_window  # the overshoot this guards against
        assert plain.adapted.loss(*future).item() > 1000 * prior_future
        assert guarded.adapted.loss(*window).item() <= prior_window
        assert guarded.adapted.loss(*future).item() < 3 * prior_future
    assert 0.0 <= guarded.step_scale < 1.0


def test_backtracking_leaves_a_step_that_already_lowers_the_window_loss(nominal_prior: DynamicsModel) -> None:
    window, _ = _window_and_future(0.4)
    plain = make_adapter(nominal_prior, _config(learning_rate=0.5))
    guarded = make_adapter(nominal_prior, _config(learning_rate=0.5, backtracking=6))
    plain.adapt(*window)
    guarded.adapt(*window)
    assert guarded.step_scale == 1.0
    for name, value in plain.adapted.state_dict().items():
        assert torch.equal(guarded.adapted.state_dict()[name], value)


def test_backtracking_on_another_adapter_is_refused_by_name(nominal_prior: DynamicsModel) -> None:
    with pytest.raises(ValueError, match="backtracking.*'grbal' only.*'rebal'"):
        make_adapter(nominal_prior, AdapterConfig(kind="rebal", backtracking=3))


# --- ensembles (PETS-style) ---------------------------------------------------------------------------------
from adaptive_mbrl.models.particles import EnsembleParticleStep  # noqa: E402


def _ensemble_prior(members: int = 3, probabilistic: bool = False, elites: int = 0) -> DynamicsModel:
    torch.manual_seed(0)
    obs, act, nxt = _system(8, 100, np.ones(8), seed=0)
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[32, 32], learning_rate=3e-3, ensemble_size=members,
                                                probabilistic=probabilistic, elites=elites), seed=0)
    fit(model, obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS), epochs=30,
        generator=torch.Generator().manual_seed(0))
    return model


def _single(model: DynamicsModel, e: int) -> DynamicsModel:
    config = ModelConfig(**{**model.config.__dict__, "ensemble_size": 1, "elites": 0})
    single = DynamicsModel(OBS, ACT, config)
    single.load_state_dict({k: v[e:e + 1] if k.startswith("layers.") else v
                            for k, v in model.state_dict().items() if k != "elite_members"})
    return single


@pytest.fixture(scope="module")
def ensemble_prior() -> DynamicsModel:
    return _ensemble_prior()


def test_ensemble_adapts_every_member_like_a_single_network_on_the_same_window(ensemble_prior) -> None:
    adapter = make_adapter(ensemble_prior, _config(learning_rate=0.5))
    obs, act, nxt = (t[0, :16] for t in _system(1, 16, np.array([0.4]), seed=3))
    adapter.adapt(obs, act, nxt)
    for e in range(3):
        single = make_adapter(_single(ensemble_prior, e), _config(learning_rate=0.5))
        single.adapt(obs, act, nxt)
        for name, value in single.adapted.named_parameters():
            torch.testing.assert_close(adapter.adapted.get_parameter(name)[e:e + 1], value, rtol=1e-5, atol=1e-6)


def test_meta_sgd_rates_are_per_member_and_skip_the_logvar_bounds() -> None:
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[8], ensemble_size=3, probabilistic=True))
    adapter = make_adapter(model, _config(learn_inner_lr=True))
    rates = adapter.learned.lr()
    assert set(rates) == {n for n, _ in model.named_parameters() if "logvar" not in n}
    assert all(rates[n].shape == model.get_parameter(n).shape and rates[n].shape[0] == 3 for n in rates)


def test_particle_step_rolls_out_the_adapted_member_it_assigns(ensemble_prior) -> None:
    """Adaptation moves the predictions; particle p on member k predicts what the adapted member k predicts,
    and the ensemble mean (no particles) is adapter.predict."""
    adapter = make_adapter(ensemble_prior, _config(learning_rate=0.5))
    obs, act, nxt = (t[0, :16] for t in _system(1, 16, np.array([-1.0]), seed=3))
    adapter.adapt(obs, act, nxt)
    state, action = torch.randn(1, 5, 1, OBS).expand(1, 5, 6, OBS), torch.rand(1, 5, ACT)
    members = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.inference_mode():
        out = adapter.particle_step()(state, action, members, None)
        prior = EnsembleParticleStep(ensemble_prior)(state, action, members, None)
        for p, k in enumerate(members.tolist()):
            expected = adapter.adapted.predict(state[0, :, p], action[0], member=k)
            torch.testing.assert_close(out[0, :, p], expected)
        assert (out - prior).abs().max() > 1e-2  # the adapted weights are what is rolled out
        torch.testing.assert_close(adapter.particle_step()(state, action, None, None)[0, :, 0],
                                   adapter.predict(state[0, :, 0], action[0]))


@pytest.mark.parametrize("probabilistic, elites", [(False, 0), (True, 2)])
def test_batch_particle_step_rolls_out_row_b_with_adapter_b(probabilistic: bool, elites: int) -> None:
    """Three environments (two adapted to different gains, one at the prior): every row equals that
    adapter's own particle step, for a shared assignment and a per-candidate one with unequal member counts
    (padded blocks), and the ensemble mean. Sampled next states (probabilistic) are compared draw for draw
    where both lay the rows out alike: one environment, every member the same number of particles."""
    prior = _ensemble_prior(3, probabilistic, elites)
    adapters = [make_adapter(prior, _config(learning_rate=0.3)) for _ in range(3)]
    data = _system(3, 16, np.array([-1.0, 0.5, 2.0]), seed=6)
    for e in range(2):
        adapters[e].adapt(data[0][e], data[1][e], data[2][e])
    g = torch.Generator().manual_seed(1)
    state, action = torch.randn(3, 4, 6, OBS, generator=g), torch.rand(3, 4, ACT, generator=g)
    k = adapters[0].particle_step().num_members
    with torch.inference_mode():
        batched = GrBALAdapter.batch_particle_step(adapters)
        assert batched.num_members == k == (elites or 3)
        if probabilistic:
            members = torch.arange(6) % k
            runs = [step(state[:1], action[:1], members, torch.Generator().manual_seed(5))
                    for step in (GrBALAdapter.batch_particle_step(adapters[:1]), adapters[0].particle_step())]
            torch.testing.assert_close(runs[0], runs[1])
            assert (runs[0] - adapters[0].particle_step()(state[:1], action[:1], None, None)).abs().max() > 1e-3
        else:
            for members in (torch.arange(6) % k, torch.randint(k, (3, 4, 6), generator=g)):
                out = batched(state, action, members, None)
                for b, adapter in enumerate(adapters):
                    row = members[b:b + 1] if members.dim() == 3 else members
                    expected = adapter.particle_step()(state[b:b + 1], action[b:b + 1], row, None)
                    torch.testing.assert_close(out[b:b + 1], expected)
        mean = batched(state, action, None, None)
        for b, adapter in enumerate(adapters):
            torch.testing.assert_close(mean[b], adapter.predict(state[b], action[b][:, None].expand(4, 6, ACT)))
    assert (mean[0] - mean[2]).abs().max() > 1e-3


def test_batch_particle_step_of_a_single_network_is_batch_predict(nominal_prior: DynamicsModel) -> None:
    adapters = [make_adapter(nominal_prior, _config()) for _ in range(2)]
    data = _system(2, 16, np.array([-1.0, 0.5]), seed=6)
    adapters[0].adapt(data[0][0], data[1][0], data[2][0])
    state, action = torch.randn(2, 7, 1, OBS), torch.rand(2, 7, ACT)
    with torch.inference_mode():
        out = GrBALAdapter.batch_particle_step(adapters)(state, action, torch.zeros(1, dtype=torch.long), None)
        expected = GrBALAdapter.batch_predict(adapters)(state[:, :, 0], action)
    assert torch.equal(out[:, :, 0], expected)


def test_ensemble_member_errors_rank_the_adapted_members(ensemble_prior) -> None:
    """member_errors[e] is member e's mean adapted MSE over the segments (what a single network gives)."""
    adapter = make_adapter(ensemble_prior, _config(learning_rate=0.5))
    obs, act, nxt = _system(4, 24, np.array([-1.0, 0.5, 2.0, -0.5]), seed=9)
    errors = adapter.member_errors(obs, act, nxt, 16)
    assert errors.shape == (3,)
    for e in range(3):
        single = _single(ensemble_prior, e)
        ad = make_adapter(single, _config(learning_rate=0.5))
        total = 0.0
        for b in range(4):
            ad.adapt(obs[b, :16], act[b, :16], nxt[b, :16])
            total += ad.adapted.member_errors(obs[b, 16:], act[b, 16:], nxt[b, 16:])[0].item()
        assert errors[e].item() == pytest.approx(total / 4, rel=1e-4)


def test_inner_loss_mse_on_another_adapter_is_refused_by_name(nominal_prior: DynamicsModel) -> None:
    with pytest.raises(ValueError, match="inner_loss 'mse' applies to adapter.kind 'grbal' only.*'rebal'"):
        make_adapter(nominal_prior, AdapterConfig(kind="rebal", inner_loss="mse"))


def test_probabilistic_ensemble_with_an_mse_inner_step_lowers_the_window_error() -> None:
    """``inner_loss: mse`` at run time: the adapted members' mean predicts the window they adapted on
    better than the prior's, on a system whose gain changed."""
    prior = _ensemble_prior(3, probabilistic=True)
    obs, act, nxt = _system(1, 17, np.array([0.3]), seed=5)
    obs, act, nxt = obs[0], act[0], nxt[0]
    adapter = make_adapter(prior, AdapterConfig(kind="grbal", window=16, steps=1, learning_rate=0.1,
                                                inner_loss="mse"))
    before = (prior.predict(obs, act) - nxt).square().mean()
    adapter.adapt(obs, act, nxt)
    after = (adapter.predict(obs, act) - nxt).square().mean()
    assert after < 0.8 * before
