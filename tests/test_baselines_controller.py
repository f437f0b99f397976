"""Baseline presets and controllers: shipped presets validate, trained PEARL / RL² run in a plain gymnasium
loop through reset / act / observe, checkpoints round-trip and runs resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import adaptive_mbrl as am
from adaptive_mbrl.baselines.controller import PEARLController, PolicyController, RL2Controller
from adaptive_mbrl.baselines.presets import (PEARLPreset, PEARLTraining, RL2Preset, SACConfig, baselines_dir,
                                             list_baseline_presets, load_baseline_preset)
from adaptive_mbrl.baselines.train_pearl import train_pearl
from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.storage.runs import RunSettings


def test_shipped_baseline_presets_load_with_the_reference_settings() -> None:
    assert {"pearl", "rl2"} <= set(list_baseline_presets())
    pearl = load_baseline_preset("pearl")
    assert isinstance(pearl, PEARLPreset) and pearl.adapt_within_episode
    assert (pearl.latent_dim, pearl.kl_weight, pearl.sac.reward_scale, pearl.sac.hidden_sizes) == (5, 0.1, 5.0, [300] * 3)
    assert (pearl.training.batch_size, pearl.training.context_batch, pearl.training.meta_batch) == (256, 100, 16)
    rl2 = load_baseline_preset("rl2")
    assert isinstance(rl2, RL2Preset) and rl2.hidden_size == 128 and rl2.training.episodes_per_trial == 2
    assert load_baseline_preset(baselines_dir() / "rl2.yaml") == rl2


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d.update(kl_weigth=1.0), "kl_weigth", "unknown key"),
    (lambda d: d["sac"].update(gamma=1.5), "sac.gamma", "out of range"),
    (lambda d: d.update(kind="maml"), "kind", "'pearl'"),
])
def test_bad_baseline_preset_names_file_and_field(tmp_path: Path, edit, field: str, words: str) -> None:
    data = yaml.safe_load((baselines_dir() / "pearl.yaml").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_baseline_preset(path)
    assert info.value.field == field and str(path) in str(info.value) and words in str(info.value)
    with pytest.raises(ValueError, match="unknown baseline preset"):
        load_baseline_preset("pearl_typo")


TINY_PEARL = PEARLPreset(name="tiny", encoder_hidden=[16], context_window=8, sac=SACConfig(hidden_sizes=[16]),
                         training=PEARLTraining(train_tasks=3, initial_episodes=1, iterations=1, tasks_per_iteration=1,
                                                grad_steps=3, meta_batch=2, batch_size=8, context_batch=4,
                                                episode_steps=20))


def _loop(ctrl, scenario: str, seed: int, steps: int = 30) -> list[np.ndarray]:
    env = am.make("cartpole", scenario, seed=seed, episode_steps=steps)
    obs, _ = env.reset()
    ctrl.reset()
    actions, done = [], False
    while not done:
        action = ctrl.act(obs)
        assert action.shape == (1,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
        next_obs, reward, terminated, truncated, info = env.step(action)
        ctrl.observe(obs, action, next_obs)
        obs, done = next_obs, terminated or truncated
        actions.append(action)
    return actions


def test_pearl_checkpoint_round_trip_resume_and_gymnasium_loop(tmp_path: Path) -> None:
    torch.manual_seed(0)
    settings = RunSettings("cartpole", "weak_motor_train", seed=0)
    run = tmp_path / "run"
    ckpt = train_pearl(TINY_PEARL, settings, run, progress=False)
    first = json.loads((run / "progress.json").read_text())
    assert first["iteration"] == 1 and first["grad_steps"] == 3 and first["env_steps"] == 3 * 20 + 2 * 20
    assert (run / "config.yaml").exists() and (run / "metrics.csv").exists() and (run / "model.yaml").exists()
    # resume extends the run; the buffers come back
    longer = PEARLPreset(**{**TINY_PEARL.__dict__, "training": PEARLTraining(**{**TINY_PEARL.training.__dict__,
                                                                                "iterations": 2})})
    train_pearl(longer, settings, run, resume=True, progress=False)
    second = json.loads((run / "progress.json").read_text())
    assert second["iteration"] == 2 and second["grad_steps"] == 6 and second["env_steps"] == first["env_steps"] + 40
    # a different preset cannot resume the run
    other = PEARLPreset(**{**longer.__dict__, "kl_weight": 1.0})
    with pytest.raises(ValueError, match="resume needs the same preset"):
        train_pearl(other, settings, run, resume=True, progress=False)
    # the checkpoint loads into a controller with the trained weights, usable in a plain loop
    a = PolicyController.from_checkpoint(ckpt, seed=0)
    b = PolicyController.from_checkpoint(ckpt, seed=0)
    assert isinstance(a, PEARLController) and a.within
    saved = torch.load(ckpt, weights_only=True)["model_state"]
    assert all(torch.equal(saved[k], v) for k, v in a.agent.state_dict().items())
    assert np.allclose(_loop(a, "motor_fault_midepisode", 1, 101), _loop(b, "motor_fault_midepisode", 1, 101))
    original = PolicyController.from_checkpoint(ckpt, adapt_within_episode=False)
    assert not original.within
    _loop(original, "weak_motor_test", 2)


def test_rl2_controller_in_a_gymnasium_loop_from_a_checkpoint(tmp_path: Path) -> None:
    from adaptive_mbrl.baselines.presets import RL2Training
    from adaptive_mbrl.baselines.train_rl2 import train_rl2
    preset = RL2Preset(name="tiny", hidden_size=8, embed_size=4,
                       training=RL2Training(iterations=1, trials_per_iteration=2, episode_steps=10, epochs=1,
                                            minibatches=1))
    ckpt = train_rl2(preset, RunSettings("cartpole", "weak_motor_train", seed=0), tmp_path / "run", progress=False)
    ctrl = PolicyController.from_checkpoint(ckpt, seed=0)
    assert isinstance(ctrl, RL2Controller)
    assert np.allclose(_loop(ctrl, "motor_fault_midepisode", 3, 101), _loop(ctrl, "motor_fault_midepisode", 3, 101))


def test_controller_rejects_bad_observations() -> None:
    torch.manual_seed(0)
    from adaptive_mbrl.baselines.pearl import PEARLAgent
    ctrl = PEARLController(PEARLAgent(5, 1, TINY_PEARL), am.make("cartpole").reward_fn)
    ctrl.reset()
    with pytest.raises(ValueError, match="4 values"):
        ctrl.act(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        ctrl.act(np.array([0, 1, 0, np.nan, 0]))


def test_baseline_controllers_keep_the_controller_contract() -> None:
    """The same input checks as AdaptiveController; a new task's reset() restores the seeded sampling."""
    from adaptive_mbrl.control import Controller
    torch.manual_seed(0)
    from adaptive_mbrl.baselines.pearl import PEARLAgent
    preset = PEARLPreset(**{**TINY_PEARL.__dict__, "sample_z": True})
    ctrl = PEARLController(PEARLAgent(5, 1, preset), am.make("cartpole").reward_fn, seed=3, deterministic=False)
    assert isinstance(ctrl, Controller)
    ctrl.reset()
    obs = np.full(5, 0.1)
    with pytest.raises(ValueError, match="got shape \\(5, 1\\)"):
        ctrl.act(obs[:, None])
    with pytest.raises(TypeError, match="dtype bool"):
        ctrl.act(np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="outside the action space \\[-1, 1\\] at indices \\[0\\]: values \\[2\\]"):
        ctrl.observe(obs, np.array([2.0]), obs)
    assert len(ctrl.episode) == 0
    first = [ctrl.act(obs) for _ in range(3)]
    ctrl.reset()
    np.testing.assert_array_equal(np.stack([ctrl.act(obs) for _ in range(3)]), np.stack(first))


@pytest.mark.parametrize("kind, overrides, expected", [
    ("pearl", [], {}),
    ("pearl", ["adapt_within_episode=false"], {"adapt_within_episode": False}),
    ("pearl", [" adapt_within_episode = true "], {"adapt_within_episode": True}),
])
def test_baseline_run_options_parse_pearls_mode(kind: str, overrides: list[str], expected: dict) -> None:
    from adaptive_mbrl.baselines.presets import baseline_run_options
    assert baseline_run_options(kind, overrides) == expected


@pytest.mark.parametrize("kind, overrides, field, words", [
    ("pearl", ["planner.samples=8"], "planner.samples", "allowed: adapt_within_episode=true|false"),
    ("pearl", ["context_window=4"], "context_window", "can change only adapt_within_episode=true|false"),
    ("pearl", ["adapt_within_episode=maybe"], "adapt_within_episode", "got 'adapt_within_episode=maybe'"),
    ("pearl", ["adapt_within_episode"], "adapt_within_episode", "expected adapt_within_episode=true|false"),
    ("pearl", ["adapt_within_episode=true", "adapt_within_episode=false"], "adapt_within_episode", "given twice"),
    ("rl2", ["adapt_within_episode=true"], "adapt_within_episode", "rl2 policy has no settings to change"),
])
def test_baseline_run_options_refuse_other_settings(kind: str, overrides: list[str], field: str, words: str) -> None:
    from adaptive_mbrl.baselines.presets import baseline_run_options
    with pytest.raises(ConfigError) as info:
        baseline_run_options(kind, overrides)
    assert info.value.field == field and words in str(info.value)


def test_one_pearl_checkpoint_runs_in_either_mode_by_run_time_setting(tmp_path: Path) -> None:
    """``adapt_within_episode`` from ``overrides`` (a suite entry's ``set:``): within the episode z follows the
    latest transitions; between episodes z stays the one inferred at reset for the whole episode."""
    torch.manual_seed(0)
    ckpt = train_pearl(TINY_PEARL, RunSettings("cartpole", "weak_motor_train", seed=0), tmp_path / "run",
                       progress=False)
    within = am.load_controller(ckpt, seed=0, overrides=["adapt_within_episode=true"])
    between = am.load_controller(ckpt, seed=0, overrides=["adapt_within_episode=false"])
    assert isinstance(within, PEARLController) and within.within and within.describe()["adapt_within_episode"]
    assert isinstance(between, PEARLController) and not between.within
    assert not between.describe()["adapt_within_episode"]
    zs = {}
    for name, ctrl in (("within", within), ("between", between)):
        env = am.make("cartpole", "weak_motor_test", seed=4, episode_steps=10)
        obs, _ = env.reset()
        ctrl.reset()
        zs[name] = [ctrl.z.clone()]
        for _ in range(5):
            action = ctrl.act(obs)
            next_obs, *_ = env.step(action)
            ctrl.observe(obs, action, next_obs)
            obs = next_obs
            ctrl.act(obs)
            zs[name].append(ctrl.z.clone())
    assert all(torch.equal(z, zs["between"][0]) for z in zs["between"])
    assert not any(torch.equal(z, zs["within"][0]) for z in zs["within"][1:])
    with pytest.raises(ValueError, match="pearl policy; overrides .*context_window.*allowed: adapt_within_episode"):
        am.load_controller(ckpt, overrides=["context_window=4"])
