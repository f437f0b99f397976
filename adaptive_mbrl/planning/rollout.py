"""Scoring candidate action sequences by rolling a dynamics function forward."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Tensor], Tensor]
"""``step(obs [..., o], act [..., a]) -> next_obs [..., o]`` (e.g. ``DynamicsModel.predict``)."""
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``reward(obs [..., o], act [..., a], next_obs [..., o]) -> [...]`` (e.g. ``RobotEnv.reward_fn``)."""
TerminationFn = Callable[[Tensor], Tensor]
"""``terminated(next_obs [..., o]) -> bool [...]`` (e.g. ``RobotEnv.termination_fn``)."""


class TrajectoryScorer:
    """Returns of candidate sequences under a (learned) step function: a planner's ``score``.

    Every horizon step is one batched call over all ``B * N`` candidates. The reward of the step that
    enters a terminal state counts; later rewards do not (alive mask). A NaN return marks a diverged
    rollout (planners rank it last).

    Args:
        step_fn: next observation from observation and action.
        reward_fn: reward of a transition (units of the environment's reward).
        termination_fn: whether a next observation ends the episode; None = never.
        discount: per-step factor; the reward of step ``h`` (0-based) is weighted ``discount ** h``.
    """

    def __init__(self, step_fn: StepFn, reward_fn: RewardFn, termination_fn: TerminationFn | None = None,
                 discount: float = 1.0) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.step_fn, self.reward_fn, self.termination_fn = step_fn, reward_fn, termination_fn
        self.discount = discount

    def __call__(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Returns of each candidate.

        Args:
            obs: start observations ``[B, o]``.
            actions: candidates ``[B, N, H, a]``.

        Returns:
            ``[B, N]`` summed (discounted) rewards, in ``actions``' dtype.
        """
        batch, samples, horizon, _ = actions.shape
        if obs.dim() != 2 or obs.shape[0] != batch:
            raise ValueError(f"obs must be [B, o] with B = {batch}, got {list(obs.shape)}")
        state = obs.to(actions.dtype)[:, None, :].expand(batch, samples, obs.shape[-1])
        returns = actions.new_zeros(batch, samples)
        alive = torch.ones(batch, samples, dtype=torch.bool, device=actions.device)
        weight = 1.0
        for h in range(horizon):
            act = actions[:, :, h]
            next_state = self.step_fn(state, act)
            reward = self.reward_fn(state, act, next_state)
            returns = returns + torch.where(alive, weight * reward, 0.0)
            if self.termination_fn is not None:
                alive = alive & ~self.termination_fn(next_state)
            state, weight = next_state, weight * self.discount
        return returns
