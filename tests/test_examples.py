"""examples/: the controller in a user's own gymnasium, raw MuJoCo and PyBullet loops runs, and the raw
loops feed it exactly the observations the library's environments produce."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.config import from_dict, to_dict
from adaptive_mbrl.envs import JointDamage
from adaptive_mbrl.envs.scenarios import Event, Task
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.storage.checkpoint import save_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STEPS = 5


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 1x16 half_cheetah model, fine-tuned online, with a small CEM planner: fast to run."""
    preset = from_dict(ControllerPreset, {
        "name": "tiny_de", "model": {"hidden_sizes": [16]},
        "adapter": {"kind": "finetune", "window": 4, "steps": 1, "learning_rate": 1e-3, "optimizer": "adam"},
        "planner": {"kind": "cem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4}}, source="test")
    model = DynamicsModel(17, 6, preset.model, seed=0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny_de.pt"
    return save_checkpoint(path, robot="half_cheetah", obs_dim=17, action_dim=6, preset=to_dict(preset),
                           model_state=model.state_dict())


def assert_rewards(rewards: list[float], steps: int = STEPS) -> None:
    assert isinstance(rewards, list) and len(rewards) == steps
    assert np.isfinite(rewards).all()


# --- gymnasium ---------------------------------------------------------------------------------------
def test_gymnasium_loop_prints_the_reward_as_the_joint_breaks(checkpoint: Path, capsys) -> None:
    rewards = load_example("gymnasium_loop").main(
        ["--checkpoint", str(checkpoint), "--steps", str(STEPS), "--break-at", "2", "--print-every", "1"])
    assert_rewards(rewards)
    out = capsys.readouterr().out
    assert "step    2: the dynamics change -> (JointDamage(joints=(4,)" in out
    assert "mean reward per step before the change" in out
    assert f"return over {STEPS} steps: {sum(rewards):.2f}" in out


def test_gymnasium_loop_break_at_moves_the_scenario_event() -> None:
    example = load_example("gymnasium_loop")
    spec = example.scenario_breaking_at("half_cheetah", "joint_break_midepisode", 7)
    assert [e.at_step for e in spec.events] == [7]
    assert example.scenario_breaking_at("half_cheetah", "joint_break_midepisode", None).events[0].at_step == 300
    with pytest.raises(ValueError, match="no mid-episode event"):
        example.scenario_breaking_at("half_cheetah", "nominal", 7)


def test_without_a_checkpoint_the_shipped_one_is_used_else_an_untrained_one_with_a_warning(
        checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    example = load_example("gymnasium_loop")
    monkeypatch.setattr(example, "controllers_dir", lambda: tmp_path)  # no shipped checkpoint there
    rewards = example.main(["--steps", "2", "--print-every", "0"])
    assert_rewards(rewards, 2)
    err = capsys.readouterr().err
    assert "WARNING" in err and "UNTRAINED mb_de controller" in err  # printed, not raised
    shipped = tmp_path / "checkpoints" / "half_cheetah" / "mb.pt"
    shipped.parent.mkdir(parents=True)
    shutil.copy(checkpoint, shipped)
    ctrl = example.load_controller(None, "half_cheetah", None, seed=0, obs_dim=17)
    assert ctrl.preset.name == "tiny_de"
    assert f"controller: {shipped}" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["gymnasium_loop", "mujoco_loop"])
def test_examples_take_a_shipped_checkpoint_reference(name: str, capsys) -> None:
    """``shipped:<robot>/<name>`` works in the Python API (it used to be "does not exist" outside the CLI)."""
    example = load_example(name)
    rewards = example.main(["--checkpoint", "shipped:half_cheetah/mb", "--steps", "2", "--print-every", "0"])
    assert_rewards(rewards, 2)
    assert "controller: shipped:half_cheetah/mb" in capsys.readouterr().out


def test_example_controllers_satisfy_the_controller_contract(checkpoint: Path) -> None:
    ctrl = load_example("gymnasium_loop").load_controller(str(checkpoint), "half_cheetah", None, seed=0, obs_dim=17)
    assert isinstance(ctrl, am.Controller)


# --- raw MuJoCo --------------------------------------------------------------------------------------
@pytest.mark.parametrize("robot", ["half_cheetah", "ant", "cartpole"])
def test_mujoco_loop_observation_equals_the_envs_on_the_same_state(robot: str) -> None:
    example = load_example("mujoco_loop")
    env = am.make(robot, seed=4)
    env.reset()
    spec = env.robot
    for action in np.random.default_rng(0).uniform(-1, 1, (3, spec.action_dim)):
        obs = env.step(action)[0]
    qpos, qvel = (x.copy() for x in env.sim.state())
    np.testing.assert_array_equal(example.build_observation(spec.objective, qpos, qvel), obs)
    _, _, data = example.load_model(robot)
    assert example.build_observation(spec.objective, data.qpos, data.qvel).shape == env.observation_space.shape
    env.close()


@pytest.mark.parametrize("robot", ["half_cheetah", "ant"])
def test_mujoco_loop_reproduces_the_env_trajectory_and_its_joint_damage(robot: str) -> None:
    """Same start, same actions: the raw loop (action order, gear, frame skip, gear zeroed at step 3) and the
    env (a JointDamage event at step 3) give identical observations."""
    example = load_example("mujoco_loop")
    env = am.make(robot)
    task = Task(events=(Event(3, (JointDamage(joints=(1,), scale=0.0),)),))
    env.reset(seed=2, options={"task": task})
    spec, model, data = example.load_model(robot)
    qpos, qvel = env.sim.state()
    data.qpos[:], data.qvel[:] = qpos, qvel
    actuators = example.actuator_indices(model, spec.actuated_joints)
    actions = np.random.default_rng(1).uniform(-1.2, 1.2, (8, spec.action_dim))  # clipping included
    for t, action in enumerate(actions):
        if t == 3:
            example.break_joint(model, actuators, spec, spec.actuated_joints[1])
        expected = env.step(action)[0]
        example.step(model, data, actuators, action, spec.frame_skip)
        np.testing.assert_array_equal(example.build_observation(spec.objective, data.qpos, data.qvel), expected)
    env.close()


def test_mujoco_loop_runs_and_breaks_the_joint(checkpoint: Path, capsys) -> None:
    rewards = load_example("mujoco_loop").main(
        ["--checkpoint", str(checkpoint), "--steps", str(STEPS), "--break-at", "2", "--print-every", "0"])
    assert_rewards(rewards)
    out = capsys.readouterr().out
    assert "step    2: joint 'fshin' (action 4) breaks: gear set to 0" in out
    assert f"return over {STEPS} steps: {sum(rewards):.2f}" in out


# --- PyBullet ----------------------------------------------------------------------------------------
@pytest.mark.pybullet
def test_pybullet_loop_runs_and_breaks_the_joint(checkpoint: Path, capsys) -> None:
    rewards = load_example("pybullet_loop").main(
        ["--checkpoint", str(checkpoint), "--steps", str(STEPS), "--break-at", "2", "--print-every", "0"])
    assert_rewards(rewards)
    out = capsys.readouterr().out
    assert "step    2: joint 'fshin' (action 4) breaks: torque 0" in out


@pytest.mark.pybullet
def test_pybullet_loop_matches_the_pybullet_env() -> None:
    """The loop's observation and reward are the pybullet env's on the same state and actions."""
    example = load_example("pybullet_loop")
    env = am.make("half_cheetah", backend="pybullet")
    obs, _ = env.reset(seed=0, options={"task": Task()})
    spec = env.robot
    sim = example.make_simulator(spec, "pybullet")
    objective = example.make_objective(spec.objective, sim.nq, sim.nv)
    example.reset_state(spec, sim, objective, np.random.default_rng(0))
    sim.set_state(*env.sim.state())
    for action in np.random.default_rng(1).uniform(-1, 1, (4, spec.action_dim)):
        next_obs, reward, *_ = env.step(action)
        sim.step(action)
        mine = objective.observe(*sim.state())
        np.testing.assert_allclose(mine, next_obs, atol=1e-9)
        assert float(objective.reward(obs, action, mine)) == pytest.approx(reward, abs=1e-9)
        obs = next_obs
    sim.close()
    env.close()
