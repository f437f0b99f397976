"""PPO pieces as small pure functions: generalised advantage estimation and the clipped surrogate loss."""
from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation along dim 0 (time).

    Args:
        rewards: ``[T, ...]`` reward of step t.
        values: ``[T, ...]`` V(s_t).
        dones: ``[T, ...]`` 1 where step t ended an episode (then s_{t+1} is not bootstrapped).
        last_value: ``[...]`` V(s_T), the state after the last step.
        gamma, lam: discount and GAE parameter.

    Returns:
        ``(advantages [T, ...], returns [T, ...])`` with ``returns = advantages + values``:
        ``delta_t = r_t + gamma (1 - d_t) V(s_{t+1}) - V(s_t)``, ``A_t = delta_t + gamma lam (1 - d_t) A_{t+1}``.
    """
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        keep = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * keep * next_value - values[t]
        next_advantage = delta + gamma * lam * keep * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def clipped_surrogate_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                           clip: float) -> torch.Tensor:
    """PPO's policy loss ``-mean(min(rho A, clip(rho, 1 - clip, 1 + clip) A))``, ``rho = exp(log_prob - old)``.

    All inputs ``[...]`` of one shape; returns a scalar.
    """
    ratio = (log_prob - old_log_prob).exp()
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean()


def clip_fraction(log_prob: torch.Tensor, old_log_prob: torch.Tensor, clip: float) -> float:
    """Share of samples whose ratio lies outside ``[1 - clip, 1 + clip]`` (a diagnostic)."""
    ratio = (log_prob - old_log_prob).exp()
    return float(((ratio - 1.0).abs() > clip).float().mean())
