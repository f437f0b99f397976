"""Terms the planner adds to the environment's reward when it scores imagined transitions.

They shape what the MPC prefers (e.g. staying upright) without changing the environment's reward, so the
returns that evaluations report stay the task's own and comparable with published tables.
"""
from __future__ import annotations

from typing import Any, Callable

RewardFn = Callable[[Any, Any, Any], Any]
UprightFn = Callable[[Any], Any]


def with_upright_cost(reward_fn: RewardFn, upright_fn: UprightFn | None, weight: float) -> RewardFn:
    """``reward_fn`` minus ``weight * (1 - upright_fn(next_obs))`` per transition; ``reward_fn`` itself at 0.

    Args:
        reward_fn: the environment's reward ``(obs [..., o], act [..., a], next_obs [..., o]) -> [...]``.
        upright_fn: cosine of the robot base's tilt from upright, ``next_obs [..., o] -> [...]`` in [-1, 1]
            (1 upright, -1 upside down); e.g. a locomotion objective's ``uprightness``.
        weight: reward units per step for a base lying on its side (``1 - cos`` = 1); twice that upside down.

    Raises:
        ValueError: ``weight`` is negative, or positive without an ``upright_fn``.
    """
    if weight < 0:
        raise ValueError(f"planner.upright_cost must be >= 0, got {weight}")
    if weight == 0:
        return reward_fn
    if upright_fn is None:
        raise ValueError("planner.upright_cost > 0 needs the robot's uprightness (a locomotion robot's "
                         "objective.uprightness); this robot or caller gives none: set planner.upright_cost=0")

    def shaped(obs: Any, action: Any, next_obs: Any) -> Any:
        return reward_fn(obs, action, next_obs) - weight * (1.0 - upright_fn(next_obs))

    return shaped
