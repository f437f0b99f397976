"""The cross-entropy method over action sequences."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from adaptive_mbrl.planning.base import BestSoFar, Planner, select_elites


class CEM(Planner):
    """Cross-entropy method with a diagonal Gaussian per environment over ``[H, a]``.

    Each iteration draws ``samples`` sequences from ``N(mean, std^2)`` (clamped to ``[-1, 1]``), keeps the
    ``elites`` best **per environment, over the samples axis**, and moves ``mean`` / ``std`` towards the
    elites' (with ``smoothing``). The mean starts from the previous step's solution shifted by one step
    and the std from ``init_std``. Executes the final mean (``execute: elite_mean``, the default) or the
    best-scoring sample of any iteration (``execute: best``); the warm start is the mean either way.
    """

    def _optimize(self, obs: Tensor, score: Callable[[Tensor], Tensor], mean: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        std = torch.full_like(mean, c.init_std)
        best = BestSoFar(mean) if c.execute == "best" else None
        for _ in range(c.iterations):
            actions = self._gaussian(mean, std, c.samples)
            elites, top = select_elites(actions, score(actions), c.elites)
            if best is not None:
                best.update(elites[:, 0], top[:, 0])
            mean = c.smoothing * mean + (1.0 - c.smoothing) * elites.mean(dim=1)
            std = c.smoothing * std + (1.0 - c.smoothing) * elites.std(dim=1, unbiased=False)
            if c.min_std > 0 and float(std.max()) < c.min_std:
                break
        return (mean if best is None else best.sequence), mean
