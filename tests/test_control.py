"""AdaptiveController: action contract, input checks, the adaptation window, reset, determinism, loading."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.adaptation.finetune import FinetuneAdapter
from adaptive_mbrl.config import from_dict, to_dict
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.fitting import fit
from adaptive_mbrl.models.state import ModelStateError
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.storage.checkpoint import save_checkpoint
from adaptive_mbrl.training.collect import VectorCollector, random_policy

WINDOW = 8


def _preset(adapter: str = "finetune", hidden: list[int] | None = None) -> ControllerPreset:
    return from_dict(ControllerPreset, {
        "name": f"tiny_{adapter}",
        "model": {"hidden_sizes": hidden or [32], "batch_size": 64},
        "adapter": {"kind": adapter, "window": WINDOW, "steps": 2, "learning_rate": 1e-2, "optimizer": "adam"},
        "planner": {"kind": "cem", "samples": 32, "horizon": 5, "iterations": 2, "elites": 4},
    }, source="test")


@pytest.fixture(scope="module")
def env():
    env = am.make("cartpole", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def model() -> DynamicsModel:
    """A tiny model fitted on 400 random cartpole transitions."""
    collector = VectorCollector("cartpole", n_envs=2, seed=0)
    buffer = TransitionBuffer(5, 1)
    collector.run(random_policy(1, np.random.default_rng(0)), 400, buffer, progress=False)
    collector.close()
    model = DynamicsModel(5, 1, _preset().model, seed=0)
    data = buffer.tensors()
    fit(model, data["obs"], data["action"], data["next_obs"], epochs=15,
        generator=torch.Generator().manual_seed(0))
    return model


def _controller(model: DynamicsModel, env, adapter: str = "finetune", seed: int = 0) -> AdaptiveController:
    return AdaptiveController(model, _preset(adapter), env.reward_fn, env.termination_fn, seed=seed)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _rollout(ctrl: AdaptiveController, env, steps: int, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run ``steps`` control steps (act -> env.step -> observe); returns the actions and observations."""
    obs, _ = env.reset(seed=seed)
    actions, observations = [], [obs]
    for _ in range(steps):
        action = ctrl.act(obs)
        next_obs, *_ = env.step(action)
        ctrl.observe(obs, action, next_obs)
        actions.append(action)
        observations.append(next_obs)
        obs = next_obs
    return actions, observations


@pytest.mark.parametrize("adapter", ["none", "finetune"])
def test_act_returns_a_bounded_float32_action(model: DynamicsModel, env, adapter: str) -> None:
    ctrl = _controller(model, env, adapter)
    ctrl.reset()
    obs, _ = env.reset(seed=0)
    for query in (obs, obs.tolist(), obs.astype(np.float32), obs.astype(np.int64), torch.as_tensor(obs)):
        action = ctrl.act(query)
        assert isinstance(action, np.ndarray)
        assert action.dtype == np.float32 and action.shape == (1,)
        assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("bad, words", [
    (np.array([0.0, -1.0, np.nan, 0.0, 0.0]), "NaN or infinite values at indices \\[2\\]"),
    (np.array([0.0, -1.0, 0.0, np.inf, -np.inf]), "NaN or infinite values at indices \\[3, 4\\]"),
    (np.zeros(6), "obs has 6 values; this controller expects 5"),
    (np.zeros(4), "obs has 4 values; this controller expects 5"),
    (np.zeros(0), "obs has 0 values"),
])
def test_bad_observations_raise_value_error(model: DynamicsModel, env, bad: np.ndarray, words: str) -> None:
    ctrl = _controller(model, env)
    with pytest.raises(ValueError, match=words):
        ctrl.act(bad)


@pytest.mark.parametrize("bad, error, words", [
    (np.zeros((5, 1)), ValueError, r"obs must be a 1-D array \[5\], got shape \(5, 1\)"),
    (np.zeros((1, 5)), ValueError, r"obs must be a 1-D array \[5\], got shape \(1, 5\)"),
    (np.float64(0.5), ValueError, r"1-D array \[5\], got shape \(\)"),
    (np.ones(5, dtype=bool), TypeError, "obs must hold real numbers .* got dtype bool"),
    (["0.1", "0", "0", "0", "0"], TypeError, "obs must hold real numbers .* got dtype <U3"),
    (np.zeros(5, dtype=complex), TypeError, "got dtype complex128"),
    ([[0.0], [0.0, 1.0]], ValueError, "obs must be a 1-D array of 5 real values"),
])
def test_observations_are_not_flattened_or_cast(model: DynamicsModel, env, bad, error: type, words: str) -> None:
    """Shape (5, 1), booleans and numeric strings used to be flattened / cast into an observation."""
    ctrl = _controller(model, env)
    with pytest.raises(error, match=words):
        ctrl.act(bad)


@pytest.mark.parametrize("action, words", [
    (np.array([1.5]), r"action is outside the action space \[-1, 1\] at indices \[0\]: values \[1.5\]"),
    (np.array([-1.01]), r"outside the action space \[-1, 1\] at indices \[0\]: values \[-1.01"),
    (np.zeros((2, 3)), r"action must be a 1-D array \[1\], got shape \(2, 3\)"),
    (np.zeros((1, 1)), r"action must be a 1-D array \[1\], got shape \(1, 1\)"),
])
def test_observe_refuses_actions_outside_the_action_space(model: DynamicsModel, env, action, words: str) -> None:
    """The model must not adapt on an action the robot never executed."""
    ctrl = _controller(model, env)
    ctrl.reset()
    with pytest.raises(ValueError, match=words):
        ctrl.observe(np.zeros(5), action, np.zeros(5))
    assert len(ctrl.window) == 0
    ctrl.observe(np.zeros(5), np.array([1.0]), np.zeros(5))  # the bound itself is an executed action
    assert len(ctrl.window) == 1


def test_observe_checks_its_inputs(model: DynamicsModel, env) -> None:
    ctrl = _controller(model, env)
    obs = np.zeros(5)
    with pytest.raises(ValueError, match="action has 2 values; this controller expects 1"):
        ctrl.observe(obs, np.zeros(2), obs)
    with pytest.raises(ValueError, match="next_obs contains NaN"):
        ctrl.observe(obs, np.zeros(1), np.full(5, np.nan))
    assert len(ctrl.window) == 0  # nothing half-recorded


def test_observe_keeps_the_last_window_transitions_oldest_first(model: DynamicsModel, env,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ctrl = _controller(model, env)
    seen: list[torch.Tensor] = []
    real_adapt = ctrl.adapter.adapt

    def spy(obs, action, next_obs):
        seen.append(obs.clone())
        real_adapt(obs, action, next_obs)

    monkeypatch.setattr(ctrl.adapter, "adapt", spy)
    ctrl.reset()
    _, observations = _rollout(ctrl, env, 12)
    assert len(ctrl.window) == WINDOW
    assert [len(s) for s in seen] == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8]
    # The adapter sees exactly the latest M transitions (the current one included), oldest first.
    expected = torch.as_tensor(np.stack(observations[12 - WINDOW:12]), dtype=torch.float32)
    assert torch.equal(seen[-1], expected)
    last_next = torch.as_tensor(observations[-1], dtype=torch.float32)
    assert torch.equal(ctrl.window[-1][2], last_next)


def test_reset_restores_the_prior_after_adaptation(model: DynamicsModel, env) -> None:
    prior = _state(model)
    ctrl = _controller(model, env, "finetune")
    assert isinstance(ctrl.adapter, FinetuneAdapter)
    ctrl.reset()
    first_actions, _ = _rollout(ctrl, env, 10)
    adapted = _state(ctrl.adapter.adapted)
    assert any(not torch.equal(adapted[k], prior[k]) for k in prior), "MB+DE did not adapt"
    for key, value in _state(model).items():  # the prior itself is never trained online
        assert torch.equal(value, prior[key]), key
    ctrl.reset()
    assert len(ctrl.window) == 0
    for key, value in _state(ctrl.adapter.adapted).items():
        assert torch.equal(value, prior[key]), key
    # A fresh episode after reset behaves like the first one.
    again, _ = _rollout(ctrl, env, 10)
    np.testing.assert_array_equal(np.stack(again), np.stack(first_actions))


@pytest.mark.parametrize("adapter", ["none", "finetune"])
def test_reset_reseeds_the_planner_so_an_episode_repeats_exactly(model: DynamicsModel, env, adapter: str) -> None:
    """The same observation sequence after reset() gives the same actions (the planner's random state is
    restored), whatever was played before."""
    ctrl = _controller(model, env, adapter, seed=5)
    ctrl.reset()
    first, observations = _rollout(ctrl, env, 6, seed=2)
    _rollout(ctrl, env, 4, seed=9)  # another episode in between, without reset
    ctrl.reset()
    replayed = []
    for obs, next_obs in zip(observations[:-1], observations[1:]):
        action = ctrl.act(obs)
        ctrl.observe(obs, action, next_obs)
        replayed.append(action)
    np.testing.assert_array_equal(np.stack(replayed), np.stack(first))
    unseeded = AdaptiveController(model, _preset(adapter), env.reward_fn, env.termination_fn)  # seed None
    unseeded.reset()
    once = np.stack(_rollout(unseeded, env, 4, seed=2)[0])
    unseeded.reset()
    np.testing.assert_array_equal(np.stack(_rollout(unseeded, env, 4, seed=2)[0]), once)


@pytest.mark.parametrize("adapter", ["none", "finetune"])
def test_same_seed_gives_the_same_actions(model: DynamicsModel, env, adapter: str) -> None:
    runs = []
    for seed in (7, 7, 8):
        ctrl = _controller(model, env, adapter, seed=seed)
        ctrl.reset()
        runs.append(np.stack(_rollout(ctrl, env, 8)[0]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("adapter", ["none", "finetune"])
def test_a_model_that_always_outputs_nan_raises(model: DynamicsModel, env, adapter: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A model broken even at its prior weights gives a clear error, never an arbitrary action."""
    ctrl = _controller(model, env, adapter)
    target = ctrl.adapter.adapted if adapter == "finetune" else ctrl.model
    monkeypatch.setattr(target, "predict", lambda obs, act, *a, **k: torch.full_like(obs, float("nan")))
    obs, _ = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="non-finite"):
        ctrl.act(obs)


def test_diverged_adapted_weights_fall_back_to_the_prior(model: DynamicsModel, env) -> None:
    """MB+DE weights that blew up are replaced by the trained weights, and the action is sound."""
    ctrl = _controller(model, env, "finetune")
    with torch.no_grad():
        for p in ctrl.adapter.adapted.parameters():
            p.fill_(float("inf"))
    obs, _ = env.reset(seed=0)
    action = ctrl.act(obs)
    assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0)
    prior = model.state_dict()
    assert all(torch.equal(v, prior[k]) for k, v in ctrl.adapter.adapted.state_dict().items())


def _checkpoint(path: Path, model: DynamicsModel, preset: ControllerPreset, robot: str = "cartpole") -> Path:
    return save_checkpoint(path, robot=robot, obs_dim=5, action_dim=1, preset=to_dict(preset),
                           model_state=model.state_dict())


def test_from_checkpoint_rebuilds_the_same_controller(tmp_path: Path, model: DynamicsModel, env) -> None:
    path = _checkpoint(tmp_path / "model.pt", model, _preset("none"))
    loaded = AdaptiveController.from_checkpoint(path, robot="cartpole", seed=3)
    for key, value in _state(model).items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    direct = _controller(model, env, "none", seed=3)
    np.testing.assert_array_equal(np.stack(_rollout(loaded, env, 5)[0]), np.stack(_rollout(direct, env, 5)[0]))


def test_from_checkpoint_with_another_preset_keeps_the_trained_network(tmp_path: Path, model: DynamicsModel,
                                                                     env) -> None:
    path = _checkpoint(tmp_path / "model.pt", model, _preset("none"))
    override = _preset("finetune", hidden=[64, 64])
    before = to_dict(override)
    ctrl = AdaptiveController.from_checkpoint(path, preset=override, seed=0)
    assert isinstance(ctrl.adapter, FinetuneAdapter)
    assert ctrl.preset.model.hidden_sizes == [32]
    assert to_dict(override) == before, "from_checkpoint changed the caller's preset"
    by_name = AdaptiveController.from_preset("mb_de", robot="cartpole", checkpoint=path, seed=0)
    assert by_name.preset.name == "mb_de" and by_name.preset.model.hidden_sizes == [32]
    assert by_name.act(env.reset(seed=0)[0]).shape == (1,)


def test_from_checkpoint_of_another_robot_is_refused(tmp_path: Path, model: DynamicsModel) -> None:
    path = _checkpoint(tmp_path / "model.pt", model, _preset("none"))
    with pytest.raises(ValueError, match="trained on robot 'cartpole', not 'half_cheetah'"):
        AdaptiveController.from_checkpoint(path, robot="half_cheetah")
    with pytest.raises(ValueError, match="trained on robot 'cartpole', not 'ant'"):
        AdaptiveController.from_preset("mb", robot="ant", checkpoint=path)


def test_from_checkpoint_whose_shapes_do_not_fit_names_them(tmp_path: Path, model: DynamicsModel) -> None:
    # The checkpoint's config says 64 hidden units, its weights have 32.
    path = _checkpoint(tmp_path / "model.pt", model, _preset("none", hidden=[64]))
    with pytest.raises(ModelStateError) as info:
        AdaptiveController.from_checkpoint(path)
    message = str(info.value)
    assert "layers.0.weight: saved [1, 6, 32], model [1, 6, 64]" in message
    assert "layers.1.weight: saved [1, 32, 5], model [1, 64, 5]" in message
    assert isinstance(info.value, ValueError)


def test_controller_drives_a_raw_mujoco_loop_like_the_gym_env(model: DynamicsModel, env) -> None:
    """In a bare MuJoCo loop, with the robot objective's observe() as the observation function, the
    controller produces exactly the trajectory it produces inside the gymnasium env from the same state."""
    import mujoco

    from adaptive_mbrl.envs.objectives import robot_objective

    spec = am.load_robot("cartpole")
    gym_ctrl, raw_ctrl = _controller(model, env, seed=3), _controller(model, env, seed=3)
    gym_actions, gym_obs = _rollout(gym_ctrl, env, 6, seed=5)

    mj_model = mujoco.MjModel.from_xml_path(str(spec.model_path("mujoco")))
    data = mujoco.MjData(mj_model)
    env.reset(seed=5)
    qpos, qvel = env.sim.state()
    data.qpos[:], data.qvel[:] = qpos, qvel  # the env's seeded initial state
    mujoco.mj_forward(mj_model, data)
    observe = robot_objective("cartpole").observe
    obs = observe(data.qpos, data.qvel)
    raw_actions = []
    for _ in range(6):
        action = raw_ctrl.act(obs)
        data.ctrl[:] = action
        mujoco.mj_step(mj_model, data, nstep=spec.frame_skip)
        next_obs = observe(data.qpos, data.qvel)
        raw_ctrl.observe(obs, action, next_obs)
        raw_actions.append(action)
        obs = next_obs
    np.testing.assert_allclose(np.stack(raw_actions), np.stack(gym_actions), atol=1e-6)
    np.testing.assert_allclose(obs, gym_obs[-1], atol=1e-9)


def test_random_controller_is_seeded_bounded_and_ignores_observations(env) -> None:
    """The random floor: actions in [-1, 1] of the right size, reproducible under a seed."""
    from adaptive_mbrl.control import RandomController

    first, second, other = RandomController(1, seed=4), RandomController(1, seed=4), RandomController(1, seed=5)
    actions = [first.act(np.zeros(5)) for _ in range(50)]
    assert all(a.shape == (1,) and a.dtype == np.float32 and abs(a[0]) <= 1.0 for a in actions)
    assert np.array_equal(np.stack(actions), np.stack([second.act(np.ones(5)) for _ in range(50)]))
    assert not np.array_equal(np.stack(actions), np.stack([other.act(np.zeros(5)) for _ in range(50)]))
    assert np.std(np.stack(actions)) > 0.4  # spread over [-1, 1] (uniform: 0.58)


def _cheetah_checkpoint(path: Path, upright_cost: float) -> Path:
    preset = from_dict(ControllerPreset, {
        "name": "tiny_upright", "model": {"hidden_sizes": [16]},
        "planner": {"kind": "cem", "samples": 16, "horizon": 3, "iterations": 1, "elites": 2,
                    "upright_cost": upright_cost}}, source="test")
    model = DynamicsModel(17, 6, preset.model, seed=0)
    save_checkpoint(path, robot="half_cheetah", obs_dim=17, action_dim=6, preset=to_dict(preset),
                    model_state=model.state_dict(), actuation="torque")
    return path


def test_upright_cost_shapes_the_planners_reward_not_the_environments(tmp_path: Path) -> None:
    path = _cheetah_checkpoint(tmp_path / "model.pt", upright_cost=3.0)
    ctrl = AdaptiveController.from_checkpoint(path, seed=0)
    env = am.make("half_cheetah", seed=0)
    obs, _ = env.reset(seed=0)
    flipped = obs.copy()
    flipped[1] = np.pi  # on its back
    act = np.zeros(6)
    planned = ctrl.policy.reward_fn(*(torch.tensor(x) for x in (obs, act, flipped)))
    assert float(planned) == pytest.approx(env.unwrapped.reward_fn(obs, act, flipped) - 6.0)
    plain = AdaptiveController.from_checkpoint(path, seed=0, overrides=["planner.upright_cost=0"])
    assert plain.policy.reward_fn(obs, act, flipped) == pytest.approx(env.unwrapped.reward_fn(obs, act, flipped))


def test_upright_cost_without_an_uprightness_is_left_out_with_a_warning(model: DynamicsModel, env,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    preset = from_dict(ControllerPreset, {**to_dict(_preset("none")), "planner": {
        "kind": "cem", "samples": 8, "horizon": 2, "iterations": 1, "elites": 2, "upright_cost": 1.0}}, source="t")
    with caplog.at_level("WARNING", logger="adaptive_mbrl.control"):
        ctrl = AdaptiveController(model, preset, env.reward_fn, env.termination_fn, seed=0)
    assert "planner.upright_cost=1 is left out" in caplog.text
    assert ctrl.policy.reward_fn == env.reward_fn
