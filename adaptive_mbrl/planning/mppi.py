"""Model-predictive path integral control (MPPI) over action sequences."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from adaptive_mbrl.planning.base import Planner


class MPPI(Planner):
    """Perturbs the warm-started mean with Gaussian noise (``init_std``) and averages the candidates with
    weights ``softmax(R / temperature)`` over the samples axis, ``iterations`` times. Executes the mean.
    """

    def _optimize(self, obs: Tensor, score: Callable[[Tensor], Tensor], mean: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        for _ in range(c.iterations):
            actions = self._gaussian(mean, c.init_std, c.samples)
            weights = torch.softmax(score(actions) / c.temperature, dim=1)  # [B, N]
            new_mean = torch.einsum("bn,bnha->bha", weights, actions)
            mean = c.smoothing * mean + (1.0 - c.smoothing) * new_mean
        return mean, mean
