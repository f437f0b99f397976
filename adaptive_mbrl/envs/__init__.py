"""Robots whose dynamics change: environments, perturbations, scenarios and objectives."""
from adaptive_mbrl.envs.factory import make, make_simulator
from adaptive_mbrl.envs.perturbations import (DampingScale, Friction, JointDamage, MassScale, Payload,
                                              Slope)
from adaptive_mbrl.envs.robot_env import RobotEnv
from adaptive_mbrl.envs.robot_spec import RobotSpec, list_robots, load_robot
from adaptive_mbrl.envs.scenarios import Event, ScenarioSpec, Task, get_scenario, list_scenarios

__all__ = ["make", "make_simulator", "RobotEnv", "RobotSpec", "list_robots", "load_robot", "Event",
           "ScenarioSpec", "Task", "get_scenario", "list_scenarios", "JointDamage", "Payload", "Friction",
           "MassScale", "DampingScale", "Slope"]
