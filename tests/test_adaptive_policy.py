"""AdaptivePolicy: one window + adapt + plan for AdaptiveController (E = 1) and meta-training's collection
policy (E envs), with the numerics each had before they shared it (reference implementations below)."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.adaptation.registry import make_adapter
from adaptive_mbrl.adaptive_policy import AdaptivePolicy
from adaptive_mbrl.config import from_dict
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.planning import TrajectoryScorer, make_planner
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.training.collect import AdaptiveCollectionPolicy, VectorCollector


def _preset(kind: str) -> ControllerPreset:
    return from_dict(ControllerPreset, {
        "name": f"t_{kind}", "model": {"hidden_sizes": [16], "context_dim": 4 if kind == "rebal" else 0},
        "adapter": {"kind": kind, "window": 4, "steps": 2, "learning_rate": 1e-2},
        "planner": {"kind": "cem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4}}, source="test")


def _model_and_adapters(kind: str, envs: int) -> tuple[DynamicsModel, list]:
    """A seeded model and ``envs`` adapters with identical learned parts (ReBAL's encoder is initialised
    from torch's global generator)."""
    preset = _preset(kind)
    torch.manual_seed(0)
    model = DynamicsModel(5, 1, preset.model, seed=0)
    adapters = [make_adapter(model, preset.adapter) for _ in range(envs)]
    for adapter in adapters[1:]:
        adapter.load_state_dict(adapters[0].state_dict())
    return model, adapters


class ReferenceCollectionPolicy:
    """meta_train.AdaptivePolicy as it was before the refactor (the numerics to keep)."""

    def __init__(self, adapters, planner, reward_fn, termination_fn) -> None:
        self.adapters, self.planner = adapters, planner
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.windows = [deque(maxlen=adapters[0].config.window) for _ in adapters]
        self.previous = [None] * len(adapters)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        for e, adapter in enumerate(self.adapters):
            if self.previous[e] is not None:
                self.windows[e].append((*self.previous[e], obs_t[e]))
                adapter.adapt(*(torch.stack(column) for column in zip(*self.windows[e])))
        scorer = TrajectoryScorer(type(self.adapters[0]).batch_predict(self.adapters), self.reward_fn,
                                  self.termination_fn)
        with torch.inference_mode():
            actions = self.planner.plan(obs_t, scorer)
        self.previous = [(obs_t[e], actions[e]) for e in range(len(self.adapters))]
        return actions.cpu().numpy()

    def on_reset(self, env: int) -> None:
        self.adapters[env].reset()
        self.windows[env].clear()
        self.previous[env] = None
        self.planner.reset([env])


def _collect(make_policy, envs: int) -> np.ndarray:
    collector = VectorCollector("cartpole", n_envs=envs, seed=0, episode_steps=25)
    buffer = TransitionBuffer(5, 1)
    policy = make_policy(collector)
    collector.run(policy, 60, buffer, progress=False, on_reset=policy.on_reset)
    collector.close()
    return buffer.tensors()["action"].numpy()


@pytest.mark.parametrize("kind", ["grbal", "rebal"])
@pytest.mark.parametrize("envs", [1, 2])
def test_collection_policy_keeps_the_numerics_of_the_former_meta_training_policy(kind: str, envs: int) -> None:
    def new(collector):
        model, adapters = _model_and_adapters(kind, envs)
        planner = make_planner(_preset(kind).planner, 1, seed=7)
        return AdaptiveCollectionPolicy(AdaptivePolicy(adapters, planner, collector.reward_fn,
                                                       collector.termination_fn))

    def reference(collector):
        model, adapters = _model_and_adapters(kind, envs)
        planner = make_planner(_preset(kind).planner, 1, seed=7)
        return ReferenceCollectionPolicy(adapters, planner, collector.reward_fn, collector.termination_fn)

    expected = _collect(reference, envs)
    np.testing.assert_array_equal(_collect(new, envs), expected)
    assert np.unique(expected).size > 10  # planned actions, not a constant


def _reference_controller_actions(kind: str, steps: int) -> np.ndarray:
    """AdaptiveController's loop as it was before the refactor: its own window, adapter.predict, plan."""
    env = am.make("cartpole", seed=0)
    model, (adapter,) = _model_and_adapters(kind, 1)
    planner = make_planner(_preset(kind).planner, 1, seed=3)
    scorer = TrajectoryScorer(adapter.predict, env.reward_fn, env.termination_fn)
    window: deque = deque(maxlen=4)
    obs, _ = env.reset(seed=1)
    actions = []
    for _ in range(steps):
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        with torch.inference_mode():
            action = planner.plan(obs_t[None], scorer)[0].numpy().astype(np.float32)
        next_obs, *_ = env.step(action)
        window.append((obs_t, torch.as_tensor(action), torch.as_tensor(next_obs, dtype=torch.float32)))
        adapter.adapt(*(torch.stack(column) for column in zip(*window)))
        actions.append(action)
        obs = next_obs
    env.close()
    return np.stack(actions)


@pytest.mark.parametrize("kind", ["none", "finetune", "grbal", "rebal"])
def test_controller_keeps_the_numerics_of_its_former_loop(kind: str) -> None:
    env = am.make("cartpole", seed=0)
    torch.manual_seed(0)  # ReBAL's encoder: the same initialisation as the reference's
    model = DynamicsModel(5, 1, _preset(kind).model, seed=0)
    ctrl = AdaptiveController(model, _preset(kind), env.reward_fn, env.termination_fn, seed=3)
    ctrl.reset()
    obs, _ = env.reset(seed=1)
    actions = []
    for _ in range(15):
        action = ctrl.act(obs)
        next_obs, *_ = env.step(action)
        ctrl.observe(obs, action, next_obs)
        actions.append(action)
        obs = next_obs
    np.testing.assert_array_equal(np.stack(actions), _reference_controller_actions(kind, 15))


def test_observe_adapts_only_the_listed_envs_from_their_own_windows() -> None:
    model, adapters = _model_and_adapters("rebal", 3)
    policy = AdaptivePolicy(adapters, make_planner(_preset("rebal").planner, 1, seed=0), lambda o, a, n: o[..., 0])
    prior = adapters[0].context.clone()
    obs, act, nxt = torch.randn(2, 5), torch.rand(2, 1) * 2 - 1, torch.randn(2, 5)
    policy.observe(obs, act, nxt, envs=[2, 0])
    assert [len(w) for w in policy.windows] == [1, 0, 1]
    assert torch.equal(policy.windows[2][0][0], obs[0]) and torch.equal(policy.windows[0][0][0], obs[1])
    assert torch.equal(adapters[1].context, prior) and not torch.equal(adapters[2].context, prior)
    policy.reset([2])
    assert [len(w) for w in policy.windows] == [1, 0, 0] and torch.equal(adapters[2].context, prior)
    assert policy.act(torch.randn(3, 5)).shape == (3, 1)


def test_several_envs_need_a_meta_adapter() -> None:
    model = DynamicsModel(5, 1, _preset("finetune").model, seed=0)
    adapters = [make_adapter(model, _preset("finetune").adapter) for _ in range(2)]
    with pytest.raises(ValueError, match="cannot predict for several environments"):
        AdaptivePolicy(adapters, make_planner(_preset("finetune").planner, 1), lambda o, a, n: o[..., 0])


# --- trajectory sampling (PETS) ----------------------------------------------------------------------------

def _pets_preset(adapter: str = "none", particles: int = 6, propagation: str = "ts_inf",
                 probabilistic: bool = True, ensemble: int = 3) -> ControllerPreset:
    return from_dict(ControllerPreset, {
        "name": "t_pets", "model": {"hidden_sizes": [16], "ensemble_size": ensemble, "probabilistic": probabilistic},
        "adapter": {"kind": adapter, "window": 4, "steps": 1, "learning_rate": 1e-2, "optimizer": "adam"},
        "planner": {"kind": "icem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4,
                    "particles": particles, "propagation": propagation}}, source="test")


class SpyStep:
    """Wraps a ParticleStep and records the shapes and member assignments it is called with."""

    def __init__(self, step) -> None:
        self.step, self.num_members, self.calls = step, step.num_members, []

    def __call__(self, state, act, members, generator):
        self.calls.append((tuple(state.shape), tuple(act.shape), None if members is None else members.clone()))
        return self.step(state, act, members, generator)


def _pets_controller(preset: ControllerPreset, seed: int = 0) -> tuple[AdaptiveController, object]:
    env = am.make("cartpole", seed=0)
    model = DynamicsModel(5, 1, preset.model, seed=0)
    return AdaptiveController(model, preset, env.reward_fn, env.termination_fn, seed=seed), env


@pytest.mark.parametrize("adapter", ["none", "finetune"])
def test_a_pets_controller_plans_with_particles_and_acts_on_the_cartpole(adapter: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ctrl, env = _pets_controller(_pets_preset(adapter))
    assert ctrl.policy.particles
    spies: list[SpyStep] = []
    real = ctrl.adapter.particle_step

    def spied():
        spies.append(SpyStep(real()))
        return spies[-1]
    monkeypatch.setattr(ctrl.adapter, "particle_step", spied)
    ctrl.reset()
    obs, _ = env.reset(seed=1)
    actions = []
    for _ in range(4):
        action = ctrl.act(obs)
        assert action.shape == (1,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
        next_obs, *_ = env.step(action)
        ctrl.observe(obs, action, next_obs)
        actions.append(action)
        obs = next_obs
    env.close()
    assert len(spies) == 4  # one particle step per control step
    calls = spies[0].calls
    assert len(calls) == 2 * 4  # iterations x horizon: one call per horizon step
    assert calls[0][0] == (1, 16, 6, 5) and calls[0][1] == (1, 16, 1)  # [B, N, P, o], [B, N, a]
    assert calls[-1][0][1] < 16  # iCEM shrinks its sample count
    assert torch.equal(calls[0][2], torch.arange(6) % 3)  # TS-inf: particle p keeps member p % K
    assert np.unique(np.stack(actions)).size == 4


def test_a_pets_episode_repeats_exactly_after_reset_and_the_seed_matters() -> None:
    def episode(ctrl, env) -> np.ndarray:
        ctrl.reset()
        obs, _ = env.reset(seed=2)
        actions = []
        for _ in range(5):
            action = ctrl.act(obs)
            next_obs, *_ = env.step(action)
            ctrl.observe(obs, action, next_obs)
            actions.append(action)
            obs = next_obs
        return np.stack(actions)

    ctrl, env = _pets_controller(_pets_preset("finetune"), seed=4)
    first = episode(ctrl, env)
    np.testing.assert_array_equal(episode(ctrl, env), first)
    other, env2 = _pets_controller(_pets_preset("finetune"), seed=5)
    assert not np.array_equal(episode(other, env2), first)


def test_particle_sampling_differs_from_the_mean_path_on_a_probabilistic_model() -> None:
    """TS-inf samples each particle's next state from its member's Gaussian; ``mean`` rolls out the
    members' mean prediction, exactly like the plain predict path."""
    env = am.make("cartpole", seed=0)
    model = DynamicsModel(5, 1, _pets_preset().model, seed=0)
    obs = torch.as_tensor(env.reset(seed=0)[0], dtype=torch.float32)[None]
    actions = torch.rand(1, 16, 4, 1, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def scores(preset: ControllerPreset) -> torch.Tensor:
        adapter = make_adapter(model, preset.adapter)
        policy = AdaptivePolicy([adapter], make_planner(preset.planner, 1, seed=0), env.reward_fn,
                                env.termination_fn)
        assert policy.particles
        with torch.inference_mode():
            return policy.scorer()(obs, actions)

    sampled, mean = scores(_pets_preset()), scores(_pets_preset(particles=1, propagation="mean"))
    with torch.inference_mode():
        plain = TrajectoryScorer(model.predict, env.reward_fn, env.termination_fn)(obs, actions)
    torch.testing.assert_close(mean, plain)
    assert not torch.allclose(sampled, mean)
    env.close()


@pytest.mark.parametrize("particles, probabilistic, ensemble, expected", [
    (1, False, 1, False), (3, False, 1, True), (1, True, 1, True), (1, False, 3, True)])
def test_particles_are_used_for_probabilistic_or_ensemble_models_or_several_particles(
        particles: int, probabilistic: bool, ensemble: int, expected: bool) -> None:
    preset = _pets_preset(particles=particles, probabilistic=probabilistic, ensemble=ensemble)
    model = DynamicsModel(5, 1, preset.model, seed=0)
    policy = AdaptivePolicy([make_adapter(model, preset.adapter)], make_planner(preset.planner, 1),
                            lambda o, a, n: o[..., 0])
    assert policy.particles is expected
    assert policy.scorer().particle_step is expected


def test_an_adapter_without_particle_step_is_refused_by_name() -> None:
    from adaptive_mbrl.adaptation.base import Adapter, AdapterConfig

    class Plain(Adapter):  # an adapter written before particle rollouts existed
        def reset(self) -> None: ...
        def adapt(self, obs, action, next_obs) -> None: ...
        def predict(self, obs, action):
            return self.model.predict(obs, action)

    preset = _pets_preset()
    model = DynamicsModel(5, 1, preset.model, seed=0)
    with pytest.raises(ValueError, match="adapter 'none' \\(Plain\\) cannot plan with trajectory sampling"):
        AdaptivePolicy([Plain(model, AdapterConfig())], make_planner(preset.planner, 1), lambda o, a, n: o[..., 0])
    with pytest.raises(NotImplementedError, match="has no particle_step"):
        Plain(model, AdapterConfig()).particle_step()
    deterministic = DynamicsModel(5, 1, _preset("none").model, seed=0)  # the predict path needs none
    AdaptivePolicy([Plain(deterministic, AdapterConfig())], make_planner(_preset("none").planner, 1),
                   lambda o, a, n: o[..., 0]).act(torch.zeros(1, 5))
