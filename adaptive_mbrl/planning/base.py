"""What every sampling planner shares: the interface, the warm start and elite selection.

Shapes: ``B`` environments planned for at once, ``N`` candidate sequences, ``H`` horizon, ``a`` action
size, ``o`` observation size. Actions are normalised to ``[-1, 1]``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch
from torch import Tensor

from adaptive_mbrl.planning.config import PlannerConfig
from adaptive_mbrl.planning.rollout import TrajectoryScorer

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""``score(obs [B, o], actions [B, N, H, a]) -> returns [B, N]`` (higher is better)."""


def sanitize_returns(returns: Tensor) -> Tensor:
    """Replace NaN / -inf by the lowest finite value and +inf by the highest, so that a diverged rollout
    is never chosen (``topk`` ranks NaN above every number) and softmax weights stay defined."""
    info = torch.finfo(returns.dtype)
    return torch.nan_to_num(returns, nan=info.min, posinf=info.max, neginf=info.min)


def select_elites(actions: Tensor, returns: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best candidates of each environment, chosen over the samples axis.

    Args:
        actions: ``[B, N, H, a]``; returns: ``[B, N]``.

    Returns:
        elites ``[B, k, H, a]`` and their returns ``[B, k]``, best first.
    """
    top, idx = returns.topk(k, dim=1)
    index = idx[:, :, None, None].expand(-1, -1, *actions.shape[2:])
    return actions.gather(1, index), top


class BestSoFar:
    """The best-scoring sequence of each environment over several iterations.

    Args:
        start: ``[B, H, a]``, kept for an environment until some candidate scores above ``-inf``.
    """

    def __init__(self, start: Tensor) -> None:
        self.sequence = start.clone()
        self.score = torch.full((start.shape[0],), -torch.inf, device=start.device, dtype=start.dtype)

    def update(self, sequences: Tensor, scores: Tensor) -> None:
        """Keep ``sequences [B, H, a]`` where ``scores [B]`` beat the best so far (ties keep the earlier)."""
        improved = scores > self.score
        self.score = torch.where(improved, scores, self.score)
        self.sequence = torch.where(improved[:, None, None], sequences, self.sequence)


def shift(sequences: Tensor, fill: float = 0.0) -> Tensor:
    """Drop the first step of ``[..., H, a]`` sequences and append ``fill`` as the last step."""
    tail = torch.full_like(sequences[..., :1, :], fill)
    return torch.cat((sequences[..., 1:, :], tail), dim=-2)


class Planner(ABC):
    """A model-agnostic optimiser over action sequences in ``[-1, 1]``, batched over environments.

    Args:
        config: planner settings.
        action_dim: a.
        device: where samples are drawn and the warm start is kept.
        seed: seeds the planner's own ``torch.Generator`` on ``device`` (same seed -> same plans).
        dtype: floating type of the sampled actions.
    """

    def __init__(self, config: PlannerConfig, action_dim: int, device: torch.device | str | None = None,
                 seed: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        self.config, self.action_dim, self.dtype = config, action_dim, dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._mean: Tensor | None = None  # warm start [B, H, a]
        self.last_plan: Tensor | None = None  # the sequences whose first actions were returned [B, H, a]

    @property
    def warm_start_mean(self) -> Tensor | None:
        """The mean the next :meth:`plan` starts from, ``[B, H, a]`` (None after :meth:`reset`)."""
        return None if self._mean is None else self._mean.clone()

    @torch.inference_mode()
    def reset(self, env_ids: Sequence[int] | Tensor | None = None) -> None:
        """Forget the warm start: of every environment (``None``) or of the listed rows only (e.g. the
        environments whose episode just ended in a batched collection)."""
        if env_ids is None or self._mean is None:
            self._mean = None
            self._clear_state(None)
            return
        rows = torch.as_tensor(env_ids, device=self.device, dtype=torch.long)
        self._mean[rows] = 0.0
        self._clear_state(rows)

    def _clear_state(self, rows: Tensor | None) -> None:
        """Forget planner-specific warm-start state (all rows when ``rows`` is None)."""

    def plan(self, obs: Tensor, score: ScoreFn) -> Tensor:
        """First action of the best plan for each environment. Runs under ``torch.inference_mode``.

        Args:
            obs: current observations ``[B, o]`` (passed through to ``score``).
            score: ``(obs [B, o], actions [B, N, H, a]) -> returns [B, N]``.

        Returns:
            actions ``[B, a]`` in ``[-1, 1]`` (an ordinary tensor, usable outside inference mode).

        Raises:
            ValueError: ``obs`` is not 2-D, or ``score`` is a :class:`TrajectoryScorer` whose particle count or
                propagation differs from this planner's config (build it with ``TrajectoryScorer.for_planner``).
        """
        if obs.dim() != 2:
            raise ValueError(f"plan: obs must be [B, obs_dim], got {list(obs.shape)}")
        self._check_scorer(score)
        with torch.inference_mode():
            batch, horizon = obs.shape[0], self.config.horizon
            if self._mean is None or self._mean.shape[0] != batch:
                self._mean = torch.zeros(batch, horizon, self.action_dim, device=self.device, dtype=self.dtype)
                self._clear_state(None)
            best, mean = self._optimize(obs, lambda actions: sanitize_returns(score(obs, actions)), self._mean)
            self._mean = shift(mean) if self.config.warm_start else torch.zeros_like(mean)
        self.last_plan = best.clone()  # cloned outside inference mode: ordinary tensors
        return self.last_plan[:, 0].clone()

    def _check_scorer(self, score: ScoreFn) -> None:
        """Refuse a scorer that would silently ignore ``particles`` / ``propagation`` of the config."""
        if not isinstance(score, TrajectoryScorer):
            return
        c = self.config
        mismatch = score.particles != c.particles or (score.particle_step and score.propagation != c.propagation)
        if mismatch:
            raise ValueError(f"planner config has particles={c.particles}, propagation={c.propagation!r} but the "
                             f"scorer rolls out particles={score.particles}, propagation={score.propagation!r}; "
                             "build it with TrajectoryScorer.for_planner(step, reward_fn, termination_fn, config)")

    @abstractmethod
    def _optimize(self, obs: Tensor, score: Callable[[Tensor], Tensor], mean: Tensor) -> tuple[Tensor, Tensor]:
        """Search from the warm-start ``mean`` [B, H, a].

        ``score(actions [B, N, H, a]) -> [B, N]`` (finite). Returns the sequences to execute ``[B, H, a]``
        and the distribution mean to warm-start the next step from ``[B, H, a]`` (before shifting).
        """

    def _gaussian(self, mean: Tensor, std: Tensor | float, samples: int) -> Tensor:
        """``samples`` draws of ``mean + std * eps``, clamped to ``[-1, 1]``: [B, H, a] -> [B, samples, H, a]."""
        eps = torch.randn((mean.shape[0], samples, *mean.shape[1:]), generator=self.generator,
                          device=self.device, dtype=self.dtype)
        std = std.unsqueeze(1) if isinstance(std, Tensor) else std
        return (mean.unsqueeze(1) + std * eps).clamp_(-1.0, 1.0)
