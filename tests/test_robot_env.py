"""The gymnasium environment on MuJoCo (adaptive_mbrl/envs/robot_env.py)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import adaptive_mbrl as am
from adaptive_mbrl.envs.perturbations import Friction, JointDamage, MassScale, Payload
from adaptive_mbrl.envs.scenarios import Event, EventSpec, ScenarioSpec, Task

PERTURBED = {"half_cheetah": "crippled_joint_test", "ant": "payload_test", "cartpole": "tip_payload_test"}
CONTINUOUS = {"half_cheetah": "payload_test", "ant": "friction_test", "cartpole": "weak_motor_test"}  # uniform draws
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def actions(env: gym.Env, steps: int, seed: int = 0) -> np.ndarray:
    """A fixed random action sequence [steps, action_dim]."""
    return np.random.default_rng(seed).uniform(-1, 1, (steps, env.action_space.shape[0]))


def run(env: gym.Env, acts: np.ndarray, **reset_kwargs) -> tuple[list[np.ndarray], list[float], list[dict]]:
    """Reset, then step through ``acts``: observations (reset one first), rewards and infos."""
    obs, info = env.reset(**reset_kwargs)
    observations, rewards, infos = [obs], [], [info]
    for action in acts:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return observations, rewards, infos


@pytest.mark.parametrize("robot", sorted(PERTURBED))
def test_gymnasium_env_checker_passes(robot: str) -> None:
    env = am.make(robot, scenario=PERTURBED[robot], seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (maximum|minimum) value.*")
        check_env(env, skip_render_check=True)
    assert env.observation_space.dtype == np.float64 and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    assert env.dt == pytest.approx(0.05)


@pytest.mark.parametrize("robot", sorted(CONTINUOUS))
def test_same_seed_same_trajectory_different_seed_differs(robot: str) -> None:
    acts = actions(am.make(robot), 40)
    a = run(am.make(robot, scenario=CONTINUOUS[robot], seed=3), acts)
    b = run(am.make(robot, scenario=CONTINUOUS[robot], seed=3), acts)
    assert len(a[0]) == len(b[0]) > 10
    for obs_a, obs_b in zip(a[0], b[0]):
        assert np.array_equal(obs_a, obs_b)
    assert a[1] == b[1]
    assert [i["task"] for i in a[2]] == [i["task"] for i in b[2]]
    c = run(am.make(robot, scenario=CONTINUOUS[robot], seed=4), acts)
    assert not np.array_equal(a[0][0], c[0][0])
    assert a[2][0]["task"] != c[2][0]["task"]  # the test scenarios all sample a continuous value


def test_reset_with_seed_reproduces_within_one_env() -> None:
    env = am.make("half_cheetah", scenario="payload_train")
    acts = actions(env, 20)
    first = run(env, acts, seed=9)
    run(env, acts, seed=1)
    again = run(env, acts, seed=9)
    assert all(np.array_equal(x, y) for x, y in zip(first[0], again[0]))
    assert first[2][0]["task_id"] == again[2][0]["task_id"]


@pytest.mark.parametrize("robot", sorted(PERTURBED))
def test_observation_space_is_the_same_under_every_scenario(robot: str) -> None:
    shapes = {am.make(robot, scenario=name).observation_space.shape for name in am.list_scenarios(robot)}
    assert len(shapes) == 1
    env = am.make(robot)
    sim = env.sim
    expected = env.objective.obs_dim(sim.nq, sim.nv)
    assert shapes == {(expected,)}


def test_task_is_not_leaked_into_the_reset_observation() -> None:
    """Same seed, different tasks: identical reset observations (given directly or sampled by scenarios)."""
    env = am.make("half_cheetah")
    tasks = [Task(), Task(at_reset=(JointDamage(joints=(4,)),)),
             Task(at_reset=(Payload(mass_kg=8.0, offset_m=(0.3, 0.0, 0.0)), Friction(scale=0.1))),
             Task(at_reset=(MassScale(scale=1.8),))]
    for seed in (0, 1):
        observations = [env.reset(seed=seed, options={"task": task})[0] for task in tasks]
        for obs in observations[1:]:
            assert np.array_equal(obs, observations[0])
    # sampled tasks: the start state depends on the seed only, not on the scenario or the task it drew
    for robot in ("half_cheetah", "ant", "cartpole"):
        for seed in (0, 7):
            nominal = am.make(robot, seed=seed).reset()[0]
            for name in am.list_scenarios(robot):
                obs, info = am.make(robot, scenario=name, seed=seed).reset()
                assert np.array_equal(obs, nominal), (robot, name, seed)
    # ... and the task is in info, where it belongs
    _, info = env.reset(seed=0, options={"task": tasks[2]})
    assert info["task"] == tasks[2] and info["task_id"] == tasks[2].task_id


def test_observation_is_the_robot_state_only() -> None:
    env = am.make("ant", scenario="mass_test", seed=0)
    obs, _ = env.reset()
    qpos, qvel = env.sim.state()
    np.testing.assert_array_equal(obs, np.concatenate((qpos[2:], qvel)))
    obs, *_ = env.step(np.zeros(8))
    qpos, qvel = env.sim.state()
    np.testing.assert_array_equal(obs, np.concatenate((qpos[2:], qvel)))


@pytest.mark.parametrize("robot, k", [("half_cheetah", 300), ("ant", 300)])
def test_mid_episode_event_changes_motion_only_from_step_k(robot: str, k: int) -> None:
    scenario = am.envs.get_scenario(robot, "leg_break_midepisode")
    assert [e.at_step for e in scenario.events] == [k]
    acts = 0.3 * actions(am.make(robot), k + 10, seed=2)  # gentle enough that the ant stays up
    nominal = am.make(robot, seed=5, episode_steps=k + 10)
    broken = am.make(robot, scenario="leg_break_midepisode", seed=5, episode_steps=k + 10)
    obs_n, rew_n, _ = run(nominal, acts)
    obs_b, rew_b, infos = run(broken, acts)
    assert len(obs_n) == len(obs_b) == k + 11  # both episodes run past k
    # observations 0..k (reset + the first k steps) are identical; step k (0-based) is the first different
    for t in range(k + 1):
        assert np.array_equal(obs_n[t], obs_b[t]), t
    assert rew_n[:k] == rew_b[:k]
    assert not np.array_equal(obs_n[k + 1], obs_b[k + 1])
    assert np.abs(obs_n[-1] - obs_b[-1]).max() > 1e-3
    changed = [info["perturbation_changed"] for info in infos[1:]]
    assert changed == [t == k for t in range(len(changed))]
    assert [info["step"] for info in infos] == list(range(len(infos)))
    assert infos[k]["active_perturbations"] == ()
    assert infos[k + 1]["active_perturbations"][0].type == "joint_damage"
    assert infos[-1]["active_perturbations"] == infos[k + 1]["active_perturbations"]


def test_event_replace_and_add_semantics() -> None:
    payload = {"type": "payload", "mass_kg": 5.0}
    scenario = ScenarioSpec(at_reset=[payload], events=[
        EventSpec(at_step=2, perturbations=[{"type": "friction", "scale": 0.5}]),
        EventSpec(at_step=4, perturbations=[{"type": "mass", "scale": 2.0}], replace=True)])
    env = am.make("half_cheetah", scenario=scenario, seed=0)
    nominal_mass = am.make("half_cheetah").sim.total_mass()
    env.reset()
    kinds, masses = [], []
    for _ in range(6):
        info = env.step(np.zeros(6))[-1]
        kinds.append([p.type for p in info["active_perturbations"]])
        masses.append(env.sim.total_mass())
    assert kinds == [["payload"]] * 2 + [["payload", "friction"]] * 2 + [["mass"]] * 2
    assert masses[0] == pytest.approx(nominal_mass + 5.0)
    assert masses[-1] == pytest.approx(2.0 * nominal_mass, rel=1e-6)  # the payload was replaced


def test_reset_runs_a_given_task() -> None:
    env = am.make("half_cheetah", scenario="crippled_joint_train", seed=0)
    task = Task(at_reset=(JointDamage(joints=(5,)),), events=(Event(3, (Friction(scale=0.4),)),))
    _, info = env.reset(options={"task": task})
    assert env.task is task
    assert info["task"] == task and info["task_id"] == task.task_id
    assert env.sim.model.actuator_gear[5, 0] == 0.0 and env.sim.model.actuator_gear[0, 0] == 120.0
    for step in range(4):
        info = env.step(np.zeros(6))[-1]
        assert info["perturbation_changed"] == (step == 3)
    assert [p.type for p in info["active_perturbations"]] == ["joint_damage", "friction"]
    with pytest.raises(ValueError, match="unknown key 'tsk'"):
        env.reset(options={"tsk": task})
    with pytest.raises(TypeError, match="Task"):
        env.reset(options={"task": {"at_reset": []}})


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((6, 1)), np.zeros((1, 6)), np.array([0, 0, np.nan, 0, 0, 0])])
def test_invalid_actions_raise(bad: np.ndarray) -> None:
    env = am.make("half_cheetah", seed=0)
    env.reset()
    with pytest.raises(ValueError):
        env.step(bad)


def test_actions_outside_the_box_are_clipped() -> None:
    big = np.array([5.0, -3.0, 0.5, 1.0, -1.0, 2.0])
    clipped = np.clip(big, -1.0, 1.0)
    a = am.make("half_cheetah", seed=0)
    b = am.make("half_cheetah", seed=0)
    a.reset()
    b.reset()
    obs_a, rew_a, *_ = a.step(big)
    obs_b, rew_b, *_ = b.step(clipped)
    assert np.array_equal(obs_a, obs_b) and rew_a == rew_b


def test_truncation_at_episode_steps() -> None:
    env = am.make("cartpole", seed=0, episode_steps=7)
    assert env.episode_steps == 7
    env.reset()
    flags = [env.step(np.zeros(1))[2:4] for _ in range(7)]
    assert flags == [(False, False)] * 6 + [(False, True)]
    assert am.make("cartpole").episode_steps == am.load_robot("cartpole").episode_steps == 200


def test_ant_terminates_when_the_torso_leaves_the_healthy_range() -> None:
    env = am.make("ant", seed=0)
    obs, _ = env.reset()
    qpos, qvel = (a.copy() for a in env.sim.state())
    assert 0.2 <= obs[0] <= 1.0
    # a normal start is healthy
    _, reward, terminated, truncated, _ = env.step(np.zeros(8))
    assert not terminated and not truncated
    # torso above 1.0 m: terminated, and no healthy bonus in the reward
    qpos[2] = 1.5
    env.sim.set_state(qpos, np.zeros_like(qvel))
    obs, reward, terminated, truncated, _ = env.step(np.zeros(8))
    assert obs[0] > 1.0 and terminated and not truncated
    assert reward == pytest.approx(obs[13])  # forward velocity only; no +1
    # the boundary values of the height range, through the env's own termination function
    probe = np.zeros((4, obs.shape[0]))
    probe[:, 0] = [0.19, 0.2, 1.0, 1.01]
    assert env.termination_fn(probe).tolist() == [True, False, False, True]
    # through a random episode the env's flag is that function of the observation
    env.reset(seed=1)
    for action in actions(env, 60, seed=1):
        obs, _, terminated, _, _ = env.step(action)
        assert terminated == bool(env.termination_fn(obs))
        if terminated:
            break


def test_half_cheetah_and_cartpole_never_terminate() -> None:
    for robot in ("half_cheetah", "cartpole"):
        env = am.make(robot, seed=0, episode_steps=30)
        _, _, infos = run(env, actions(env, 30, seed=3))
        assert len(infos) == 31


def test_info_objects_are_fresh_each_call() -> None:
    env = am.make("half_cheetah", scenario="payload_test", seed=0)
    _, info0 = env.reset()
    info1 = env.step(np.zeros(6))[-1]
    # The task and the perturbations are frozen objects: no caller can change what another info holds.
    with pytest.raises(dataclasses.FrozenInstanceError):
        info1["task"].at_reset = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        info1["active_perturbations"][0].mass_kg = -1.0
    with pytest.raises(TypeError):
        info1["active_perturbations"][0] = None
    info2 = env.step(np.zeros(6))[-1]
    assert info0["task"].at_reset and info2["task"] == info0["task"]
    assert info2["active_perturbations"][0].mass_kg > 0
    assert info0 is not info1 and info1 is not info2
    assert set(info2) >= {"task", "task_id", "active_perturbations", "perturbation_changed", "step"}


def test_render_returns_an_image_or_skips_without_gl() -> None:
    """Render in a child process (the GL backend is fixed at import); skip cleanly if no GL exists."""
    code = textwrap.dedent("""
        import numpy as np
        import adaptive_mbrl as am
        env = am.make("cartpole", seed=0, render_mode="rgb_array")
        env.reset()
        image = env.render()
        print("SHAPE", image.shape, image.dtype, float(np.std(image)))
        assert am.make("cartpole").render() is None
    """)
    gl = os.environ.get("MUJOCO_GL", "egl")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=REPO, env={**os.environ, "MUJOCO_GL": gl, "PYOPENGL_PLATFORM": gl})
    gl_markers = ("OpenGL", "EGL", "OSMesa", "GLFW", "glGetError", "mjr_makeContext", "gladLoadGL", "display")
    if result.returncode != 0 and any(marker in result.stderr for marker in gl_markers):
        pytest.skip(f"no usable OpenGL for MUJOCO_GL={gl}: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("SHAPE")][0]
    assert "(360, 480, 3) uint8" in line
    assert float(line.split()[-1]) > 1.0  # not a blank image


def test_bad_render_mode() -> None:
    with pytest.raises(ValueError, match="rgb_array"):
        am.make("cartpole", render_mode="human")
