"""PyBullet backend: gymnasium API, determinism, and that every perturbation changes the physics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import adaptive_mbrl as am
from adaptive_mbrl.envs import (DampingScale, Event, Friction, JointDamage, MassScale, Payload, Slope,
                                Task)

pytestmark = pytest.mark.pybullet
ROBOTS = ["half_cheetah", "ant", "a1"]


def make(robot: str, **kwargs) -> am.RobotEnv:
    return am.make(robot, backend="pybullet", **kwargs)


def rollout(env: am.RobotEnv, actions: np.ndarray, task: Task | None = None, seed: int = 0) -> np.ndarray:
    """Observations [T + 1, obs_dim] of ``actions`` [T, nu] from ``reset(seed)`` (no early stop)."""
    obs, _ = env.reset(seed=seed, options={"task": task or Task()})
    out = [obs]
    for action in actions:
        out.append(env.step(action)[0])
    return np.array(out)


def still_rollout(env: am.RobotEnv, actions: np.ndarray, task: Task, qvel: np.ndarray | None = None):
    """qpos history [T + 1, nq] from the reference pose at rest (no noise) under ``task``."""
    env.reset(seed=0, options={"task": task})
    sim = env.sim
    sim.set_state(sim.reference_qpos(), np.zeros(sim.nv) if qvel is None else qvel)
    out = [sim.state()[0].copy()]
    for action in actions:
        env.step(action)
        out.append(sim.state()[0].copy())
    return np.array(out)


@pytest.mark.parametrize("robot", ROBOTS)
def test_check_env_and_seeded_determinism(robot: str) -> None:
    env = make(robot)
    check_env(env, skip_render_check=True)
    actions = np.random.default_rng(3).uniform(-1, 1, (15, env.sim.nu))
    first, second = rollout(env, actions, seed=7), rollout(make(robot), actions, seed=7)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, rollout(env, actions, seed=8))
    env.close()
    env.close()  # closing twice is safe


@pytest.mark.parametrize("robot", ROBOTS)
def test_state_round_trip_in_mujoco_conventions(robot: str) -> None:
    env = make(robot)
    env.reset(seed=1)
    for action in np.random.default_rng(0).uniform(-1, 1, (5, env.sim.nu)):
        env.step(action)
    qpos, qvel = (x.copy() for x in env.sim.state())
    if env.sim.free:
        assert np.isclose(np.linalg.norm(qpos[3:7]), 1.0)
    env.sim.set_state(qpos, qvel)
    q2, v2 = env.sim.state()
    np.testing.assert_allclose(q2, qpos, atol=1e-6)   # pybullet keeps some transforms in float32
    np.testing.assert_allclose(v2, qvel, atol=1e-6)


def test_free_base_angular_velocity_is_in_body_frame() -> None:
    env = make("ant")
    env.reset(seed=0)
    sim = env.sim
    qpos = sim.reference_qpos()
    qpos[3:7] = (np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4))  # yawed 90 degrees about z
    qvel = np.zeros(sim.nv)
    qvel[3] = 1.0                                                 # spin about the body's x axis
    sim.set_state(qpos, qvel)
    world_omega = np.array(sim._client.getBaseVelocity(sim.body)[1])
    np.testing.assert_allclose(world_omega, (0.0, 1.0, 0.0), atol=1e-9)  # body x = world y


def test_a1_standing_pose_and_no_mujoco_model() -> None:
    env = make("a1")
    qpos = env.sim.reference_qpos()
    np.testing.assert_allclose(qpos[7:10], (0.0, 0.9, -1.8))
    assert 12.0 < env.sim.total_mass() < 13.0
    with pytest.raises(ValueError, match="no 'mujoco' model"):
        am.make("a1", backend="mujoco")


def test_a1_joint_and_body_speeds_stay_physical_under_saturated_actions() -> None:
    # Near-full random actions (PD targets at the edge of their range), through falls. The motor model (robot.yaml joint_damping) keeps joints near
    # the A1 motors' ~21 rad/s (without it: median 85 rad/s); the 2 ms engine step keeps contacts stable
    # (at 5 ms 12 % of these steps exceeded 100 rad/s or m/s and the trunk sometimes flew off at 10^4 m/s).
    env = make("a1")
    rng = np.random.default_rng(0)
    speeds = []
    for seed in range(15):
        env.reset(seed=seed)
        for _ in range(100):
            action = np.sign(rng.uniform(-1, 1, 12)) * rng.uniform(0.5, 1.0, 12)
            obs, _, terminated, _, _ = env.step(action)
            speeds.append(np.abs(obs[17:]).max())  # obs = qpos[2:] (17) + qvel (18)
            if terminated:
                break
    speeds = np.array(speeds)
    assert len(speeds) > 200
    assert np.median(speeds) < 30 and speeds.max() < 100


def test_joint_damping_from_robot_yaml_adds_to_the_model_files() -> None:
    import dataclasses

    from adaptive_mbrl.envs import load_robot, make_simulator
    spec = load_robot("half_cheetah")
    extra = [0.5, 0.0, 0.0, 0.0, 0.0, 2.0]
    damped = dataclasses.replace(spec, joint_damping=extra)
    for backend in ("mujoco", "pybullet"):
        base, more = make_simulator(spec, backend), make_simulator(damped, backend)
        if backend == "mujoco":
            dofs = base.model.jnt_dofadr[[base.model.joint(j).id for j in spec.actuated_joints]]
            np.testing.assert_allclose(more.model.dof_damping[dofs] - base.model.dof_damping[dofs], extra)
        else:
            cols = base._act_qpos - (7 if base.free else 0)
            np.testing.assert_allclose(more._damping[cols] - base._damping[cols], extra)
    with pytest.raises(ValueError, match="joint_damping: needs one value per actuated joint"):
        dataclasses.replace(spec, joint_damping=[1.0])


@pytest.mark.parametrize("robot", ["half_cheetah", "a1"])
def test_disabled_joint_does_not_move(robot: str) -> None:
    env = make(robot)
    joint = 1 if robot == "half_cheetah" else 2          # bshin / FR calf
    column = env.sim._act_qpos[joint]
    push = np.zeros((6, env.sim.nu))
    push[:, joint] = 1.0
    healthy = still_rollout(env, push, Task())[:, column]
    damaged = Task(at_reset=(JointDamage(joints=(joint,), scale=0.0),))
    broken = still_rollout(env, push, damaged)[:, column]
    # The same damage with no command (for the A1's PD targets, the zero action still holds the pose).
    zero = still_rollout(env, np.zeros_like(push), damaged)[:, column]
    np.testing.assert_allclose(broken, zero, atol=1e-9)      # the motor's command has no effect at all
    assert np.abs(healthy - zero).max() > 0.1


def test_payload_adds_mass_and_changes_motion() -> None:
    env = make("half_cheetah")
    actions = np.zeros((15, 6))
    nominal = still_rollout(env, actions, Task())
    mass0 = env.sim.total_mass()
    loaded = still_rollout(env, actions, Task(at_reset=(Payload(mass_kg=9.0, offset_m=(0.3, 0.0, 0.0)),)))
    assert env.sim.total_mass() == pytest.approx(mass0 + 9.0)
    assert loaded[-1, 1] < nominal[-1, 1] - 0.02               # the torso sinks lower
    assert loaded[-1, 2] > nominal[-1, 2] + 0.05               # and pitches nose-down (+rooty; front load)


def test_low_friction_changes_travel() -> None:
    env = make("ant")
    actions = np.random.default_rng(5).uniform(-1, 1, (30, 8))
    nominal = still_rollout(env, actions, Task())
    icy = still_rollout(env, actions, Task(at_reset=(Friction(scale=0.05),)))
    assert np.linalg.norm(icy[-1, :2] - nominal[-1, :2]) > 0.05


def test_mass_scale_changes_response_to_torque() -> None:
    env = make("half_cheetah")
    qpos = env.sim.reference_qpos()
    qpos[1] = 2.0                                               # high in the air: no contacts
    actions = np.full((2, 6), 0.5)

    def joint_motion(task: Task) -> float:
        env.reset(seed=0, options={"task": task})
        env.sim.set_state(qpos, np.zeros(env.sim.nv))
        for action in actions:
            env.step(action)
        return float(np.abs(env.sim.state()[0][3:] - qpos[3:]).sum())

    assert joint_motion(Task(at_reset=(MassScale(scale=3.0),))) < 0.85 * joint_motion(Task())


def test_damping_scale_changes_velocity_decay() -> None:
    env = make("half_cheetah")
    qpos = env.sim.reference_qpos()
    qpos[1] = 2.0
    qvel = np.zeros(env.sim.nv)
    qvel[3:] = 3.0

    def joint_speed(task: Task) -> float:
        env.reset(seed=0, options={"task": task})
        env.sim.set_state(qpos, qvel)
        env.step(np.zeros(6))
        return float(np.abs(env.sim.state()[1][3:]).sum())

    assert joint_speed(Task(at_reset=(DampingScale(scale=4.0),))) < 0.8 * joint_speed(Task())
    assert joint_speed(Task(at_reset=(DampingScale(scale=0.0),))) > joint_speed(Task())


def test_slope_makes_the_robot_drift_downhill() -> None:
    env = make("ant")
    actions = np.zeros((20, 8))
    flat = still_rollout(env, actions, Task())
    uphill = still_rollout(env, actions, Task(at_reset=(Slope(degrees=25.0),)))
    assert uphill[-1, 0] < flat[-1, 0] - 0.05                 # gravity pulls towards -x


def test_reset_restores_nominal_physics_exactly() -> None:
    actions = np.random.default_rng(2).uniform(-1, 1, (12, 12))
    fresh = make("a1")
    reference = rollout(fresh, actions)
    env = make("a1")
    heavy = Task(at_reset=(Payload(mass_kg=4.0, offset_m=(0.1, 0.0, 0.05)), Friction(scale=0.2),
                           MassScale(scale=1.5), DampingScale(scale=2.0), Slope(degrees=10.0),
                           JointDamage(legs=(0,), scale=0.0)))
    perturbed = rollout(env, actions, heavy)
    assert env.sim.total_mass() > fresh.sim.total_mass() + 4.0
    assert env.sim.dynamics_info() != fresh.sim.dynamics_info()
    assert not np.array_equal(perturbed, reference)
    replay = rollout(env, actions)
    assert env.sim.dynamics_info() == fresh.sim.dynamics_info()
    assert env.sim.total_mass() == fresh.sim.total_mass()
    np.testing.assert_array_equal(replay, reference)


def test_mid_episode_event_changes_subsequent_motion() -> None:
    env = make("a1")
    actions = np.random.default_rng(4).uniform(-1, 1, (10, 12))
    nominal = rollout(env, actions)
    event = Event(at_step=4, perturbations=(JointDamage(legs=(0, 1), scale=0.0),))
    broken = rollout(env, actions, Task(events=(event,)))
    np.testing.assert_array_equal(broken[:5], nominal[:5])    # obs 0..4: before the event acts
    assert np.abs(broken[6:] - nominal[6:]).max() > 1e-3


@pytest.mark.parametrize("robot", ROBOTS)
def test_env_reward_equals_torch_reward_fn(robot: str) -> None:
    env = make(robot)
    obs, _ = env.reset(seed=0)
    rows = []
    for action in np.random.default_rng(1).uniform(-1, 1, (8, env.sim.nu)).astype(np.float32):
        next_obs, reward, terminated, *_ = env.step(action)
        rows.append((obs, action.astype(np.float64), next_obs, reward, terminated))
        obs = next_obs
    o, a, n, r, t = (np.array(x) for x in zip(*rows))
    batch = env.reward_fn(torch.as_tensor(o), torch.as_tensor(a), torch.as_tensor(n))
    np.testing.assert_allclose(batch.numpy(), r, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(env.termination_fn(torch.as_tensor(n)).numpy(), t)


def test_render_returns_an_image() -> None:
    env = make("half_cheetah", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8 and image.std() > 0


@pytest.mark.parametrize("robot", ["half_cheetah", "ant"])
def test_bullet_variant_files_are_up_to_date(robot: str, tmp_path) -> None:
    """The committed <robot>_bullet.xml equals what robots/make_bullet_variant.py makes from <robot>.xml."""
    import subprocess
    import sys
    from adaptive_mbrl.paths import robots_dir

    out = tmp_path / f"{robot}_bullet.xml"
    subprocess.run([sys.executable, str(robots_dir() / "make_bullet_variant.py"), robot, "30", str(out)],
                   check=True, capture_output=True)
    assert out.read_text() == (robots_dir() / robot / f"{robot}_bullet.xml").read_text()
