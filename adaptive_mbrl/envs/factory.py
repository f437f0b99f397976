"""``make(robot, scenario, backend, seed)``: the one way to build an environment."""
from __future__ import annotations

from adaptive_mbrl.envs.robot_env import RobotEnv
from adaptive_mbrl.envs.robot_spec import BACKENDS, RobotSpec, load_robot
from adaptive_mbrl.envs.scenarios import ScenarioSpec, resolve_scenario
from adaptive_mbrl.envs.simulator import Simulator


def make_simulator(robot: RobotSpec, backend: str) -> Simulator:
    """Build the physics backend ``backend`` for ``robot``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    robot.model_path(backend)  # raises if the robot has no model for this backend
    if backend == "mujoco":
        from adaptive_mbrl.envs.mujoco_sim import MujocoSimulator
        return MujocoSimulator(robot)
    from adaptive_mbrl.envs.pybullet_sim import PybulletSimulator
    return PybulletSimulator(robot)


def make(robot: str, scenario: str | ScenarioSpec = "nominal", backend: str = "mujoco",
         seed: int | None = None, render_mode: str | None = None,
         episode_steps: int | None = None) -> RobotEnv:
    """Build a gymnasium environment of ``robot`` under ``scenario`` on ``backend``.

    Args:
        robot: a name from :func:`adaptive_mbrl.list_robots` (``half_cheetah``, ``ant``, ...).
        scenario: a name from :func:`adaptive_mbrl.list_scenarios` (e.g. ``crippled_joint_test``), a
            ``file.yaml:name`` of a user's own scenario file, or a :class:`ScenarioSpec`.
        backend: ``mujoco`` (default, embedded) or ``pybullet``.
        seed: seed of the first ``reset()`` that is called without one; the same seed reproduces the
            same task, initial state and trajectory exactly.
        render_mode: ``None`` or ``"rgb_array"``.
        episode_steps: override the robot's episode length (control steps, an integer >= 1; every event of
            the scenario must fall inside it).

    Raises:
        ValueError: an unknown robot, scenario or backend, an out-of-range ``episode_steps``, or an event
            past the episode's end (each message names the field and what is allowed).
    """
    spec = load_robot(robot)
    scenario_spec = resolve_scenario(spec, scenario)
    sim = make_simulator(spec, backend)
    try:
        env = RobotEnv(spec, scenario_spec, sim, render_mode=render_mode, episode_steps=episode_steps)
    except BaseException:
        sim.close()
        raise
    env._pending_seed = seed
    return env
