"""``make(robot, scenario, backend, seed)``: the one way to build an environment."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.envs.robot_env import RobotEnv
from adaptive_mbrl.envs.robot_spec import BACKENDS, RobotSpec, load_robot
from adaptive_mbrl.envs.scenarios import ScenarioSpec, get_scenario, parse_scenario_file
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


def resolve_scenario(robot: RobotSpec, scenario: str | ScenarioSpec) -> ScenarioSpec:
    """A scenario given by name, by ``path/to/file.yaml:name``, or as a ScenarioSpec."""
    if isinstance(scenario, ScenarioSpec):
        if scenario.robot and scenario.robot != robot.name:
            raise ValueError(f"scenario {scenario.name!r} is for robot {scenario.robot!r}, not {robot.name!r}")
        # A spec built in code has not been through the file loader: check it against this robot, and bind it
        # to the robot (its templates are resolved by robot name when tasks are sampled).
        scenario.validate(robot, "<ScenarioSpec>", scenario.name or "scenario")
        return scenario if scenario.robot else dataclasses.replace(scenario, robot=robot.name)
    if ":" in scenario and scenario.split(":", 1)[0].endswith((".yaml", ".yml")):
        file, name = scenario.split(":", 1)
        try:
            data = yaml.safe_load(Path(file).read_text())
        except FileNotFoundError:
            raise ConfigError(file, "", "scenario file not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(file, "", f"not valid YAML: {err}") from None
        scenarios = parse_scenario_file(data, robot, file)
        if name not in scenarios:
            raise ValueError(f"{file}: no scenario {name!r}; allowed: {', '.join(scenarios)}")
        return scenarios[name]
    return get_scenario(robot.name, scenario)


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
        episode_steps: override the robot's episode length (control steps).
    """
    spec = load_robot(robot)
    scenario_spec = resolve_scenario(spec, scenario)
    env = RobotEnv(spec, scenario_spec, make_simulator(spec, backend), render_mode=render_mode,
                   episode_steps=episode_steps)
    env._pending_seed = seed
    return env
