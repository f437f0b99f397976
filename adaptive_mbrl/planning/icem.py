"""The improved cross-entropy method (iCEM, Pinneri et al. 2020)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from adaptive_mbrl.planning.base import BestSoFar, Planner, select_elites, shift
from adaptive_mbrl.planning.noise import colored_noise


class ICEM(Planner):
    """CEM with the improvements of iCEM:

    - coloured noise along the horizon (``noise_beta``; smooth, low-frequency action sequences);
    - the sample count shrinks by ``sample_decay`` per iteration, never below ``2 * elites``;
    - a ``keep_elites`` share of each iteration's elites joins the next iteration's candidates, and the
      last iteration's kept elites, shifted by one step, join the first iteration of the next control step;
    - the mean itself is a candidate in the last iteration;
    - executes the best sequence found in any iteration (``execute: best``, the default) or the final
      distribution mean (``execute: elite_mean``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._kept: Tensor | None = None  # shifted elites of the last control step [B, k, H, a]

    def _clear_state(self, rows: Tensor | None) -> None:
        if rows is None or self._kept is None:
            self._kept = None
        else:
            self._kept[rows] = 0.0

    def _samples_at(self, iteration: int) -> int:
        c = self.config
        decayed = round(c.samples * c.sample_decay ** (-iteration))
        return min(c.samples, max(2 * c.elites, decayed))

    def _optimize(self, obs: Tensor, score: Callable[[Tensor], Tensor], mean: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        batch = mean.shape[0]
        n_keep = round(c.keep_elites * c.elites)
        std = torch.full_like(mean, c.init_std)
        kept = self._kept if (c.warm_start and self._kept is not None) else None
        best = BestSoFar(mean)
        for it in range(c.iterations):
            noise = colored_noise((batch, self._samples_at(it), *mean.shape[1:]), c.noise_beta,
                                  self.generator, device=self.device, dtype=self.dtype)
            parts = [(mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp_(-1.0, 1.0)]
            if kept is not None and n_keep > 0:
                parts.append(kept)
            if it == c.iterations - 1:
                parts.append(mean.unsqueeze(1))
            actions = torch.cat(parts, dim=1)
            elites, top = select_elites(actions, score(actions), c.elites)
            best.update(elites[:, 0], top[:, 0])
            mean = c.smoothing * mean + (1.0 - c.smoothing) * elites.mean(dim=1)
            std = c.smoothing * std + (1.0 - c.smoothing) * elites.std(dim=1, unbiased=False)
            kept = elites[:, :n_keep]
            if c.min_std > 0 and float(std.max()) < c.min_std:
                break
        if c.warm_start and n_keep > 0:
            # Shifted elites: the new last step is filled by the coloured-noise mean's (zero) fill.
            self._kept = shift(kept)
        return (mean if c.execute == "elite_mean" else best.sequence), mean
