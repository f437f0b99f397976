"""MB learning curve and held-out evaluation: train a model-based preset, then evaluate controllers.

    # MB on nominal half_cheetah: return against environment steps (target >= 1000 within 100k steps)
    python benchmarks/mb_learning.py --robot half_cheetah --train-scenario nominal --controllers mb

    # MB vs MB+DE on crippled half_cheetah, trained on joints 0-3, evaluated on held-out joints 4 / 5 / both
    python benchmarks/mb_learning.py --robot half_cheetah --train-scenario crippled_joint_train \
        --eval-scenarios crippled_joint_test joint_break_midepisode --controllers mb mb_de

The training run lives in --run-dir (default
``<$ADAPTIVE_MBRL_RUNS or runs>/bench_<preset>_<robot>_<scenario>_s<seed>``; resumable: run the same command
again after an interruption). ``--set SECTION.KEY=VALUE ...`` changes the
trained preset (e.g. a smaller budget: ``training.iterations=2 training.steps_per_iteration=2000``).
Evaluation episodes use seeds 10_000 + i for every controller, so all controllers face the same tasks.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from adaptive_mbrl.evaluation import run_episode
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.trainer import load_training_preset
from adaptive_mbrl.training.train_model import train_model

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import default_runs_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="nominal")
    parser.add_argument("--eval-scenarios", nargs="+", default=None, help="default: the training scenario")
    parser.add_argument("--preset", default="mb", help="preset used for training")
    parser.add_argument("--controllers", nargs="+", default=["mb"], help="presets evaluated on the trained model")
    parser.add_argument("--episodes", type=int, default=3, help="evaluation episodes per controller and scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's training rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids oversubscription "
                        "when other processes share the cores)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="change the trained preset, e.g. training.random_steps=2000 model.hidden_sizes=[64,64]")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="evaluation episode length in control steps (default: the robot's)")
    args = parser.parse_args()
    print(provenance_line(), flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_training_preset(args.preset, args.iterations, args.overrides)
    run_dir = Path(args.run_dir or default_runs_dir() / f"bench_{args.preset}_{args.robot}_{args.train_scenario}"
                   f"_s{args.seed}")

    start = time.perf_counter()
    checkpoint = train_model(preset, RunSettings(args.robot, args.train_scenario, seed=args.seed),
                             run_dir, resume=True)
    progress = json.loads((run_dir / "progress.json").read_text())
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"training: {args.preset} on {args.robot}/{args.train_scenario}, seed {args.seed}, "
          f"{progress['env_steps']} env steps, {progress['wall_clock_s'] / 60:.1f} min of training wall-clock "
          f"(this call {(time.perf_counter() - start) / 60:.1f} min)\n")
    print("| round | env steps | mean return of the round's MPC episodes | episodes | val loss |")
    print("|---|---|---|---|---|")
    for row in progress["history"]:
        print(f"| {row['iteration']} | {row['env_steps']} | {row['mean_return']:.1f} | {row['episodes']} | "
              f"{row['val_loss']:.4f} |")

    print(f"\nevaluation ({args.episodes} episodes each, seeds 10000+):\n")
    print("| controller | scenario | mean return | std | per episode | control Hz |")
    print("|---|---|---|---|---|---|")
    for scenario in args.eval_scenarios or [args.train_scenario]:
        for name in args.controllers:
            controller = AdaptiveController.from_checkpoint(checkpoint, preset=name, seed=args.seed,
                                                            threads=args.threads)
            returns, steps, t0 = [], 0, time.perf_counter()
            for i in range(args.episodes):
                record = run_episode(controller, args.robot, scenario, 10_000 + i, episode_steps=args.episode_steps)
                total, rewards = record.total, record.rewards
                returns.append(total)
                steps += len(rewards)
            hz = steps / (time.perf_counter() - t0)
            print(f"| {name} | {scenario} | {np.mean(returns):.1f} | {np.std(returns):.1f} | "
                  f"{', '.join(f'{r:.0f}' for r in returns)} | {hz:.0f} |", flush=True)


if __name__ == "__main__":
    main()
