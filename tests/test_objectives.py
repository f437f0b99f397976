"""Reward and termination (adaptive_mbrl/envs/objectives.py): the env and the planner's torch functions agree,
and the rewards are the documented functions of the simulator state."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import adaptive_mbrl as am

SCENARIO = {"half_cheetah": "mass_damping_test_high", "ant": "payload_test", "cartpole": "tip_payload_test"}


def record(robot: str, steps: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Transitions of a random-action rollout, plus the simulator's qpos / qvel after each step."""
    env = am.make(robot, scenario=SCENARIO[robot], seed=seed)
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("obs", "action", "next_obs", "reward", "terminated", "qpos", "qvel")}

    def step(action: np.ndarray) -> bool:
        nonlocal obs
        next_obs, reward, terminated, _, _ = env.step(action)
        qpos, qvel = env.sim.state()
        for key, value in (("obs", obs), ("action", action), ("next_obs", next_obs), ("reward", reward),
                           ("terminated", terminated), ("qpos", qpos.copy()), ("qvel", qvel.copy())):
            out[key].append(value)
        obs = next_obs
        return terminated

    for _ in range(steps):
        if step(rng.uniform(-1, 1, env.action_space.shape[0])):
            obs, _ = env.reset()
    if robot == "ant":  # add terminating transitions: the torso thrown above the healthy range
        qpos, qvel = (a.copy() for a in env.sim.state())
        qpos[2] = 1.4
        env.sim.set_state(qpos, qvel)
        obs = env.objective.observe(*env.sim.state())
        assert step(rng.uniform(-1, 1, 8))
    result = {k: np.array(v) for k, v in out.items()}
    result["env"] = env  # type: ignore[assignment]
    return result


@pytest.fixture(scope="module", params=sorted(SCENARIO))
def data(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    return record(request.param)


def test_reward_parity_on_torch_batches(data: dict) -> None:
    env = data["env"]
    obs, action, next_obs = (torch.as_tensor(data[k], dtype=torch.float64) for k in ("obs", "action", "next_obs"))
    reward = env.reward_fn(obs, action, next_obs)
    assert isinstance(reward, torch.Tensor) and reward.dtype == torch.float64 and reward.shape == (len(obs),)
    np.testing.assert_allclose(reward.numpy(), data["reward"], rtol=0, atol=1e-9)
    assert np.ptp(data["reward"]) > 1e-3  # a varied batch, not a constant
    # extra leading dimensions, as the planner uses ([samples, horizon, dim])
    stacked = env.reward_fn(obs.expand(3, -1, -1), action.expand(3, -1, -1), next_obs.expand(3, -1, -1))
    assert stacked.shape == (3, len(obs))
    np.testing.assert_allclose(stacked.numpy(), np.broadcast_to(data["reward"], (3, len(obs))), atol=1e-9)


def test_reward_is_differentiable_for_the_planner(data: dict) -> None:
    env = data["env"]
    action = torch.as_tensor(data["action"], dtype=torch.float64).requires_grad_(True)
    reward = env.reward_fn(torch.as_tensor(data["obs"]), action, torch.as_tensor(data["next_obs"]))
    reward.sum().backward()
    ctrl_cost = env.robot.objective.ctrl_cost
    np.testing.assert_allclose(action.grad.numpy(), -2 * ctrl_cost * data["action"], atol=1e-12)


def test_termination_parity_on_torch_batches(data: dict) -> None:
    env = data["env"]
    done = env.termination_fn(torch.as_tensor(data["next_obs"], dtype=torch.float64))
    assert isinstance(done, torch.Tensor) and done.dtype == torch.bool
    assert done.numpy().tolist() == data["terminated"].tolist()
    if env.robot.name == "ant":
        assert data["terminated"].any() and not data["terminated"].all()
    nan_obs = torch.full((1, data["next_obs"].shape[1]), float("nan"), dtype=torch.float64)
    assert bool(env.termination_fn(nan_obs)[0])  # a diverged state always ends the episode


def test_half_cheetah_reward_from_the_simulator_state() -> None:
    data = record("half_cheetah", steps=30)
    expected = data["qvel"][:, 0] - 0.1 * (data["action"] ** 2).sum(-1)
    np.testing.assert_allclose(data["reward"], expected, rtol=0, atol=1e-12)
    assert np.abs(data["qvel"][:, 0]).max() > 0.05  # the velocity term is really exercised
    np.testing.assert_array_equal(data["next_obs"][:, 8], data["qvel"][:, 0])  # obs[8] = forward velocity


def test_ant_reward_from_the_simulator_state() -> None:
    data = record("ant", steps=30)
    z = data["qpos"][:, 2]
    healthy = (z >= 0.2) & (z <= 1.0)
    expected = data["qvel"][:, 0] - 0.5 * (data["action"] ** 2).sum(-1) + 1.0 * healthy
    np.testing.assert_allclose(data["reward"], expected, rtol=0, atol=1e-12)
    assert not healthy.all() and healthy.any()


def test_cartpole_reward_formula() -> None:
    data = record("cartpole", steps=40)
    x, theta = data["qpos"][:, 0], data["qpos"][:, 1]
    expected = np.cos(theta) - 0.01 * x ** 2 - 0.01 * (data["action"] ** 2).sum(-1)
    np.testing.assert_allclose(data["reward"], expected, rtol=0, atol=1e-12)
    obs = data["next_obs"]
    np.testing.assert_allclose(obs, np.stack([x, np.cos(theta), np.sin(theta), data["qvel"][:, 0],
                                              data["qvel"][:, 1]], axis=1), atol=1e-15)
    # it starts hanging down (reward near -1) and upright scores +1
    env = data["env"]
    assert env.reset(seed=0)[0][1] < -0.99
    upright = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert env.reward_fn(upright, torch.zeros(1, 1, dtype=torch.float64), upright).item() == pytest.approx(1.0)
    assert not data["terminated"].any()


def test_reward_counts_the_clipped_action() -> None:
    env = am.make("half_cheetah", seed=0)
    env.reset()
    _, reward, *_ = env.step(np.full(6, 3.0))
    assert reward == pytest.approx(env.sim.state()[1][0] - 0.1 * 6.0, abs=1e-12)


ROBOT_BACKENDS = [pytest.param(robot, backend, marks=[pytest.mark.pybullet] if backend == "pybullet" else [])
                  for robot in am.list_robots() for backend in am.load_robot(robot).models]


@pytest.mark.parametrize(("robot", "backend"), ROBOT_BACKENDS)
def test_model_sizes_from_the_files_equal_the_simulators(robot: str, backend: str) -> None:
    from adaptive_mbrl.envs import make_simulator
    from adaptive_mbrl.envs.objectives import model_sizes
    spec = am.load_robot(robot)
    sim = make_simulator(spec, backend)
    try:
        assert model_sizes(spec, backend) == (sim.nq, sim.nv)
    finally:
        sim.close()


@pytest.mark.parametrize(("robot", "backend"), ROBOT_BACKENDS)
def test_robot_objective_builds_no_simulator(robot: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a controller only needs the observation layout: no physics engine is started for it, and the
    layout is the one the environment observes with."""
    import adaptive_mbrl.envs.factory as factory
    from adaptive_mbrl.envs.objectives import robot_objective
    env = am.make(robot, backend=backend)
    obs, _ = env.reset(seed=0)
    state = tuple(a.copy() for a in env.sim.state())
    env.close()

    def refuse(*args, **kwargs):
        raise AssertionError("robot_objective built a simulator")

    monkeypatch.setattr(factory, "make_simulator", refuse)
    for name in ("MujocoSimulator", "PybulletSimulator"):
        module = f"adaptive_mbrl.envs.{'mujoco_sim' if name.startswith('M') else 'pybullet_sim'}"
        monkeypatch.setattr(f"{module}.{name}.__init__", refuse)
    objective = robot_objective(robot, backend)
    assert objective.obs_dim(*_sizes(robot, backend)) == obs.shape[0]
    np.testing.assert_allclose(objective.observe(*state), obs, rtol=1e-6, atol=1e-6)


def _sizes(robot: str, backend: str) -> tuple[int, int]:
    from adaptive_mbrl.envs.objectives import model_sizes
    return model_sizes(am.load_robot(robot), backend)


def test_uprightness_of_the_planar_cheetah_is_the_cosine_of_its_pitch() -> None:
    env = am.make("half_cheetah", seed=0)
    obs, _ = env.reset(seed=0)
    objective = env.unwrapped.objective
    for pitch, expected in ((0.0, 1.0), (np.pi / 2, 0.0), (np.pi, -1.0), (-np.pi, -1.0)):
        flipped = obs.copy()
        flipped[1] = pitch  # obs = qpos[1:] + qvel: obs[1] is the root's pitch hinge qpos[2]
        assert objective.uprightness(flipped) == pytest.approx(expected, abs=1e-12)
        assert float(objective.uprightness(torch.tensor(flipped))) == pytest.approx(expected, abs=1e-12)
    batch = torch.tensor(np.stack([obs, obs]))
    assert objective.uprightness(batch).shape == (2,)


def test_uprightness_of_a_free_base_from_its_quaternion() -> None:
    env = am.make("ant", seed=0)
    obs, _ = env.reset(seed=0)
    objective = env.unwrapped.objective
    quat = slice(1, 5)  # obs = qpos[2:] + qvel: z, then the quaternion w x y z
    cases = (((1.0, 0.0, 0.0, 0.0), 1.0),                                 # upright
             ((0.0, 1.0, 0.0, 0.0), -1.0),                                # rolled upside down
             ((np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0), 0.0),     # pitched 90 degrees
             ((np.cos(np.pi / 2 / 2), 0.0, 0.0, np.sin(np.pi / 2 / 2)), 1.0))  # yawed only: still upright
    for q, expected in cases:
        tilted = obs.copy()
        tilted[quat] = q
        assert objective.uprightness(tilted) == pytest.approx(expected, abs=1e-12)


def test_cartpole_has_no_uprightness() -> None:
    env = am.make("cartpole", seed=0)
    assert not hasattr(env.unwrapped.objective, "uprightness")
