"""Robots whose dynamics change: environments, perturbations, scenarios and objectives."""
from adaptive_mbrl.envs.factory import make, make_simulator
from adaptive_mbrl.envs.perturbations import (DampingScale, Friction, JointDamage, MassScale, Payload,
                                              Perturbation, Slope, register_perturbation)
from adaptive_mbrl.envs.robot_env import ResetNeeded, RobotEnv
from adaptive_mbrl.envs.robot_spec import RobotSpec, list_robots, load_robot
from adaptive_mbrl.envs.scenarios import (Event, ScenarioFileError, ScenarioSpec, Task, get_scenario,
                                          list_scenarios, resolve_scenario, scenario_slug)

__all__ = ["make", "make_simulator", "RobotEnv", "ResetNeeded", "RobotSpec", "list_robots", "load_robot", "Event",
           "ScenarioSpec", "ScenarioFileError", "Task", "get_scenario", "list_scenarios", "resolve_scenario",
           "scenario_slug", "Perturbation", "register_perturbation", "JointDamage", "Payload", "Friction",
           "MassScale", "DampingScale", "Slope"]
