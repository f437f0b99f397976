"""adaptive_mbrl: model-based control that adapts online when a robot's dynamics change.

Quick start::

    import adaptive_mbrl as am
    am.list_robots()                      # ['ant', 'cartpole', 'half_cheetah', ...]
    am.list_scenarios("half_cheetah")     # ['nominal', 'crippled_joint_train', ...]
    env = am.make("half_cheetah", scenario="leg_break_midepisode", seed=0)
"""
from adaptive_mbrl.envs import (Event, RobotEnv, ScenarioSpec, Task, list_robots, list_scenarios, load_robot,
                                make)

__version__ = "0.1.0"
__all__ = ["make", "list_robots", "list_scenarios", "load_robot", "RobotEnv", "ScenarioSpec", "Task", "Event",
           "__version__"]
