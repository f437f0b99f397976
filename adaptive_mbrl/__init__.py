"""adaptive_mbrl: model-based control that adapts online when a robot's dynamics change.

Quick start::

    import adaptive_mbrl as am
    am.list_robots()                      # ['ant', 'cartpole', 'half_cheetah', ...]
    am.list_scenarios("half_cheetah")     # ['nominal', 'crippled_joint_train', ...]
    env = am.make("half_cheetah", scenario="leg_break_midepisode", seed=0)
    ctrl = am.load_controller("shipped:half_cheetah/mb", "mb_de", seed=0)   # any trained controller
    ctrl.reset(); action = ctrl.act(obs); ctrl.observe(obs, action, next_obs)

The controller names (:class:`AdaptiveController`, :class:`RandomController`, the :class:`Controller`
contract, :func:`load_controller`) are imported on first use, so ``import adaptive_mbrl`` does not import
torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from adaptive_mbrl.envs import (Event, RobotEnv, ScenarioSpec, Task, list_robots, list_scenarios, load_robot,
                                make)

if TYPE_CHECKING:
    from adaptive_mbrl.contract import Controller
    from adaptive_mbrl.control import AdaptiveController, RandomController
    from adaptive_mbrl.loading import load_controller

__version__ = "0.1.0"

_LAZY = {"AdaptiveController": "adaptive_mbrl.control", "RandomController": "adaptive_mbrl.control",
         "Controller": "adaptive_mbrl.contract", "load_controller": "adaptive_mbrl.loading"}
"""Top-level names whose modules import torch: loaded on first access (PEP 562)."""

__all__ = ["make", "list_robots", "list_scenarios", "load_robot", "RobotEnv", "ScenarioSpec", "Task", "Event",
           "AdaptiveController", "RandomController", "Controller", "load_controller", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adaptive_mbrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
