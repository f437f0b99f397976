"""Random shooting: uniform candidate sequences, keep the best."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from adaptive_mbrl.planning.base import Planner


class RandomShooting(Planner):
    """Scores ``samples`` sequences drawn uniformly from ``[-1, 1]^(H x a)`` and returns the best one.

    One round, no warm start (the GrBAL / ReBAL papers' MPC: 500 candidates, horizon 10).
    """

    def _optimize(self, obs: Tensor, score: Callable[[Tensor], Tensor], mean: Tensor) -> tuple[Tensor, Tensor]:
        batch, horizon, dims = mean.shape
        actions = torch.rand((batch, self.config.samples, horizon, dims), generator=self.generator,
                             device=self.device, dtype=self.dtype).mul_(2.0).sub_(1.0)
        best = score(actions).argmax(dim=1)
        return actions[torch.arange(batch, device=self.device), best], torch.zeros_like(mean)
