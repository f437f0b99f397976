"""Terms the planner adds to the environment's reward when it scores imagined transitions.

They shape what the MPC prefers (e.g. staying upright) without changing the environment's reward, so the
returns that evaluations report stay the task's own and comparable with published tables.
"""
from __future__ import annotations

from typing import Any, Callable

RewardFn = Callable[[Any, Any, Any], Any]
UprightFn = Callable[[Any], Any]


def with_upright_cost(reward_fn: RewardFn, upright_fn: UprightFn | None, weight: float) -> RewardFn:
    """``reward_fn`` minus ``weight * (1 - upright_fn(next_obs))`` per transition; ``reward_fn`` itself when
    ``weight`` is 0 or the robot has no base orientation (``upright_fn`` None, e.g. the cart-pole), so one
    preset runs on every robot.

    Args:
        reward_fn: the environment's reward ``(obs [..., o], act [..., a], next_obs [..., o]) -> [...]``.
        upright_fn: cosine of the robot base's tilt from upright, ``next_obs [..., o] -> [...]`` in [-1, 1]
            (1 upright, -1 upside down); e.g. a locomotion objective's ``uprightness``; None: no term.
        weight: reward units per step for a base lying on its side (``1 - cos`` = 1); twice that upside down.

    Raises:
        ValueError: ``weight`` is negative.
    """
    if weight < 0:
        raise ValueError(f"planner.upright_cost must be >= 0, got {weight}")
    if weight == 0 or upright_fn is None:
        return reward_fn

    def shaped(obs: Any, action: Any, next_obs: Any) -> Any:
        return reward_fn(obs, action, next_obs) - weight * (1.0 - upright_fn(next_obs))

    return shaped
