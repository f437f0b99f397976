"""Planning speed: milliseconds per ``plan`` call through a learned model, per model size and planner.

    python benchmarks/planning_speed.py [--threads 1 2] [--envs 1 8] [--repeats 30] [--pets]

Half-cheetah sizes (obs 17, act 6) and its torch reward; an untrained model with fitted normalisers
(the cost does not depend on the weights). Reports the median and the best of ``--repeats`` calls, and
the achieved GFLOP/s of the model (2 x weights x rows per horizon step). The CPU is shared: compare
numbers taken in one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from adaptive_mbrl.models import DynamicsModel, EnsembleParticleStep, ModelConfig
from adaptive_mbrl.planning import PlannerConfig, TrajectoryScorer, make_planner
from adaptive_mbrl.provenance import provenance_line

OBS, ACT = 17, 6
PETS_PLANNERS = {"icem 3x120 H15": PlannerConfig(kind="icem", horizon=15, samples=120, iterations=3, elites=12),
                 "cem 5x200 H30": PlannerConfig(kind="cem", horizon=30, samples=200, iterations=5, elites=50)}


def reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Half-cheetah-like: forward velocity (index 8) minus 0.1 |a|^2."""
    return next_obs[..., 8] - 0.1 * (act * act).sum(-1)


def time_plan(model: DynamicsModel, planner_cfg: PlannerConfig, envs: int, repeats: int) -> tuple[float, float]:
    """(median, best) milliseconds of one ``plan`` call for ``envs`` environments."""
    planner = make_planner(planner_cfg, ACT, seed=0)
    step = EnsembleParticleStep(model) if planner_cfg.particles > 1 else model.predict
    scorer = TrajectoryScorer.for_planner(step, reward, None, planner_cfg, seed=0)
    obs = torch.randn(envs, OBS)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            start = time.perf_counter()
            planner.plan(obs, scorer)
            if i >= 3:
                times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs", type=int, nargs="+", default=[1])
    parser.add_argument("--hidden", type=int, nargs="+", default=[200, 512])
    parser.add_argument("--activations", nargs="+", default=["silu", "relu"])
    parser.add_argument("--planners", nargs="+", default=["random_shooting"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--samples", type=int, default=500, help="action sequences per planner iteration")
    parser.add_argument("--horizon", type=int, default=10, help="planning horizon (control steps)")
    parser.add_argument("--pets", action="store_true", help="also time a 5-member 4x200 PE with 5 / 20 particles")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(provenance_line(), flush=True)
    print(f"{'planner':>16} {'model':>8} {'act':>5} {'thr':>3} {'envs':>4} {'median ms':>10} {'best ms':>8} "
          f"{'GFLOP/s':>8}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for kind in args.planners:
            cfg = PlannerConfig(kind=kind, horizon=args.horizon, samples=args.samples,
                                iterations=5 if kind != "random_shooting" else 1,
                                elites=min(50, args.samples))
            for width in args.hidden:
                for activation in args.activations:
                    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[width] * 3, activation=activation))
                    model.fit_normalizers(torch.randn(100, OBS), torch.rand(100, ACT), torch.randn(100, OBS))
                    weights = sum(p[0].numel() for p in model.parameters())
                    for envs in args.envs:
                        median, best = time_plan(model, cfg, envs, args.repeats)
                        flops = 2 * weights * cfg.samples * cfg.horizon * cfg.iterations * envs
                        print(f"{kind:>16} {f'3x{width}':>8} {activation:>5} {threads:>3} {envs:>4} {median:>10.2f} "
                              f"{best:>8.2f} {flops / best / 1e6:>8.1f}", flush=True)
        if args.pets:  # PE-TS: 5 x (4 x 200) probabilistic members, ts_inf, one environment
            pe = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[200] * 4, ensemble_size=5, probabilistic=True))
            pe.fit_normalizers(torch.randn(100, OBS), torch.rand(100, ACT), torch.randn(100, OBS))
            for name, cfg in PETS_PLANNERS.items():
                for particles in (5, 20):
                    median, best = time_plan(pe, dataclasses.replace(cfg, particles=particles), 1, args.repeats)
                    print(f"{name:>16} {'PE5x4x200':>9} P={particles:<3} {threads:>3} {median:>10.2f} {best:>8.2f}",
                          flush=True)


if __name__ == "__main__":
    main()
