"""Uncertainty of the headline number of an evaluation: a method's mean return relative to a baseline's.

Returns under dynamics shift are often bimodal (an episode either keeps the robot up for its whole length
or ends in a fall after a few dozen steps), so a mean ± standard deviation says little about whether two
methods differ. :func:`ratio_interval` gives a bootstrap confidence interval of the ratio of means that
respects how the numbers were produced: a few training seeds (each method's model of seed ``s`` is
trained with seed ``s``), and a few evaluation episodes per seed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def ratio_interval(returns: Mapping[int, Sequence[float]], baseline: Mapping[int, Sequence[float]],
                   level: float = 0.95, resamples: int = 2000, seed: int = 0,
                   paired: bool = False, independent: bool = False) -> tuple[float, float]:
    """Two-level bootstrap confidence interval of ``mean(returns) / mean(baseline)``.

    Each resample draws the training seeds with replacement (the same draw for the method and the
    baseline, whose seed-``s`` models share their training seed and evaluation tasks), then, within every
    drawn seed, that seed's episodes with replacement: independently for the two, or, with ``paired``,
    the same episode indices for both (episode ``i`` of either faced the same task and environment seed,
    so a hard task is drawn for both or for neither). With ``independent`` the two are methods of different
    families whose seed numbers mean nothing to each other (e.g. a model-based method against PEARL): each
    draws its own training seeds, all of its seeds, and then their episodes. The interval is the
    central ``level`` share of the resampled ratios; resamples whose baseline mean is not positive are
    dropped (a ratio is meaningless there).

    Args:
        returns: training seed -> episode returns of the method (env reward units).
        baseline: training seed -> episode returns of the baseline.
        level: coverage, in (0, 1).
        resamples: bootstrap resamples.
        seed: seeds the resampling, so a table is reproducible.
        paired: resample the method's and the baseline's episode ``i`` together (lists in episode order);
            a seed whose two lists differ in length is resampled independently.
        independent: draw the two sides' training seeds separately (their seeds need not match; excludes
            ``paired``).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when the two share no seed with episodes (without ``independent``),
        either has a single episode, or the baseline mean is not positive in more than half of the resamples.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if independent and paired:
        raise ValueError("paired and independent exclude each other: independent seeds have no episode pairs")
    if independent:
        return _independent_interval(returns, baseline, level, resamples, seed)
    seeds = sorted(s for s in set(returns) & set(baseline) if len(returns[s]) and len(baseline[s]))
    if sum(len(returns[s]) for s in seeds) < 2 or sum(len(baseline[s]) for s in seeds) < 2:
        return float("nan"), float("nan")  # one episode each: nothing to resample
    mine = [np.asarray(returns[s], dtype=float) for s in seeds]
    base = [np.asarray(baseline[s], dtype=float) for s in seeds]
    rng = np.random.default_rng(seed)
    ratios = np.full(resamples, np.nan)
    for i in range(resamples):
        picked = rng.integers(0, len(seeds), len(seeds))
        numerator, denominator = (np.concatenate(parts).mean() for parts in zip(*(
            _resample(mine[k], base[k], paired, rng) for k in picked)))
        if denominator > 0:
            ratios[i] = numerator / denominator
    return _central(ratios, level)


def _independent_interval(returns: Mapping[int, Sequence[float]], baseline: Mapping[int, Sequence[float]],
                          level: float, resamples: int, seed: int) -> tuple[float, float]:
    """:func:`ratio_interval` with each side's training seeds and episodes drawn on their own."""
    sides = [[np.asarray(r[s], dtype=float) for s in sorted(r) if len(r[s])] for r in (returns, baseline)]
    if any(sum(part.size for part in side) < 2 for side in sides):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    ratios = np.full(resamples, np.nan)
    for i in range(resamples):
        numerator, denominator = (np.concatenate([rng.choice(side[k], side[k].size)
                                                  for k in rng.integers(0, len(side), len(side))]).mean()
                                  for side in sides)
        if denominator > 0:
            ratios[i] = numerator / denominator
    return _central(ratios, level)


def _central(ratios: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` share of the finite ``ratios``; (nan, nan) if more than half are NaN."""
    if np.isnan(ratios).mean() > 0.5:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def _resample(mine: np.ndarray, base: np.ndarray, paired: bool,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One seed's episodes drawn with replacement: ``(method [n], baseline [m])``."""
    if paired and mine.size == base.size:
        index = rng.integers(0, mine.size, mine.size)
        return mine[index], base[index]
    return rng.choice(mine, mine.size), rng.choice(base, base.size)


def by_seed(results: Sequence[Mapping]) -> dict[int, list[float]]:
    """Episode results (dicts with ``seed``, ``return`` and optionally ``episode``) -> training seed ->
    returns in episode order."""
    grouped: dict[int, list[float]] = {}
    for r in sorted(results, key=lambda r: (int(r["seed"]), int(r.get("episode", 0)))):
        grouped.setdefault(int(r["seed"]), []).append(float(r["return"]))
    return grouped
