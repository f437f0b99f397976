"""Settings of the sampling planners (load with ``adaptive_mbrl.config.from_dict``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adaptive_mbrl.config import bounded

PlannerKind = Literal["random_shooting", "cem", "mppi", "icem"]
Execute = Literal["best", "elite_mean"]


@dataclass
class PlannerConfig:
    """One sampling-based MPC optimiser over action sequences in ``[-1, 1]``.

    Attributes:
        kind: ``random_shooting`` (uniform samples, best one), ``cem`` (cross-entropy method),
            ``mppi`` (path-integral weighting) or ``icem`` (improved CEM, Pinneri et al. 2020).
        horizon: H, control steps per plan.
        samples: N, candidate sequences per iteration (iCEM: in the first iteration).
        iterations: refinement rounds (cem / mppi / icem; random shooting does one).
        elites: K, best samples that set the next distribution (cem / icem); ``K <= N``.
        smoothing: weight of the old mean / std in each update, ``new = s * old + (1 - s) * fit``
            (cem / icem; mppi smooths its mean the same way). 0 = no smoothing.
        init_std: standard deviation of the sampling distribution at each control step, in action units.
        min_std: the cem / icem iterations stop refining a plan whose std fell below this everywhere.
        temperature: MPPI's lambda, in return units: weights ``exp((R - max R) / lambda)``.
        noise_beta: iCEM coloured-noise exponent: power spectrum ~ 1 / f^beta along the horizon
            (0 = white, 2 = brown / smooth).
        keep_elites: iCEM: share of the elites carried into the next iteration, and (shifted by one step)
            into the next control step.
        sample_decay: iCEM: the sample count shrinks by this factor every iteration (>= 2 K samples).
        warm_start: start each control step from the previous solution shifted by one step.
        particles: P, rollouts per candidate for trajectory sampling (PETS); a candidate's score is the
            mean return of its particles. 1 = one rollout (deterministic models). P > 1 needs a stochastic
            or ensemble step (``models.EnsembleParticleStep``); a multiple of the ensemble's (elite) member
            count keeps each horizon step one stacked call.
        propagation: how particles use ensemble members: ``ts_inf`` (a particle keeps its member for the
            whole horizon), ``ts_1`` (it redraws its member every step) or ``mean`` (the members' mean, no
            sampling; needs ``particles = 1``).
        execute: cem / icem only: which sequence is executed (and kept as ``last_plan``): ``best`` (the
            best-scoring candidate of any iteration) or ``elite_mean`` (the final distribution mean: the
            elites' mean, smoothed with ``smoothing``). Default (null): cem ``elite_mean``, icem ``best``.
        upright_cost: reward units per predicted step subtracted from the planner's score times
            ``1 - cos(tilt)`` of the robot's base (0 upright, 1 on its side, 2 upside down; locomotion robots;
            :func:`~adaptive_mbrl.planning.score_terms.with_upright_cost`). It keeps the MPC from discovering
            gaits on the robot's back; the environment's reward, and so every reported return, is unchanged.
            0 = the environment's reward alone.
    """

    kind: PlannerKind
    horizon: int = bounded(10, lo=1)
    samples: int = bounded(500, lo=1)
    iterations: int = bounded(5, lo=1)
    elites: int = bounded(50, lo=1)
    smoothing: float = bounded(0.1, lo=0.0, hi=1.0, hi_open=True)
    init_std: float = bounded(0.5, lo=0.0, lo_open=True)
    min_std: float = bounded(0.0, lo=0.0)
    temperature: float = bounded(1.0, lo=0.0, lo_open=True)
    noise_beta: float = bounded(2.0, lo=0.0, hi=4.0)
    keep_elites: float = bounded(0.3, lo=0.0, hi=1.0)
    sample_decay: float = bounded(1.25, lo=1.0)
    warm_start: bool = True
    particles: int = bounded(1, lo=1)
    propagation: Literal["ts_inf", "ts_1", "mean"] = "ts_inf"
    execute: Execute | None = None
    upright_cost: float = bounded(0.0, lo=0.0)

    def __post_init__(self) -> None:
        if self.elites > self.samples:
            raise ValueError(f"elites ({self.elites}) must not exceed samples ({self.samples})")
        if self.execute is not None and self.kind not in ("cem", "icem"):
            raise ValueError(f"execute applies to cem and icem only; leave it unset (null) for {self.kind}")
        if self.propagation == "mean" and self.particles > 1:
            raise ValueError(f"propagation 'mean' samples nothing, so particles must be 1 (got {self.particles}); "
                             "use ts_inf or ts_1 with several particles")
