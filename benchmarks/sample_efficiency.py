"""Held-out return against environment steps of training, for GrBAL, ReBAL, MB, PEARL and RL² on one task family.

    python benchmarks/sample_efficiency.py --robot half_cheetah --train-scenario crippled_joint_train \
        --test-scenario crippled_joint_test --budgets 50000 250000 1000000 --seeds 0 --episodes 3

Each method trains with its shipped preset (``controllers/*.yaml``, ``controllers/baselines/*.yaml``) in
``runs/sample_<robot>_<train>_<method>_s<seed>``, extended round by round (a resumed run may only grow
``training.iterations``) until its environment steps reach each budget in turn; the checkpoint at that point
is kept as ``model_at_<budget>.pt`` with its step count and training wall-clock in ``budgets.json``. Then
every kept checkpoint runs ``--episodes`` episodes of the held-out scenario (environment seeds 10_000 + i,
the same tasks for every method) on ``--workers`` local processes. A run that reaches ``--max-minutes`` of
training wall-clock stops there and the table says which budgets it did not reach.

Everything resumes: run the same command again after an interruption or with larger budgets. Environment
steps count every transition a method collected (random data, exploration, adaptation episodes); a budget
can be overshot by up to one collection round, so the table prints the actual count.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from adaptive_mbrl.evaluation import EpisodeJob, LocalExecutor
from adaptive_mbrl.storage.runs import RunSettings

MODEL_BASED = {"MB": "mb", "GrBAL": "grbal", "ReBAL": "rebal"}
BASELINES = {"PEARL": "pearl", "RL2": "rl2"}
METHODS = [*MODEL_BASED, *BASELINES]


def run_dir(robot: str, scenario: str, method: str, seed: int) -> Path:
    return Path(f"runs/sample_{robot}_{scenario}_{method.lower()}_s{seed}")


def _train(method: str, robot: str, scenario: str, seed: int, iterations: int, folder: Path) -> None:
    """Train (or extend) ``method``'s run in ``folder`` to ``iterations`` rounds."""
    from adaptive_mbrl.trainer import load_training_preset, train
    preset = load_training_preset({**MODEL_BASED, **BASELINES}[method], iterations)
    train(preset, RunSettings(robot, scenario, seed=seed), folder, resume=True, progress=False)


def _progress(folder: Path) -> dict | None:
    path = folder / "progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def reach_budgets(method: str, robot: str, scenario: str, seed: int, budgets: list[int],
                  max_minutes: float) -> dict[str, dict]:
    """Extend the run until each budget is reached (or the time limit); returns ``budgets.json``."""
    folder = run_dir(robot, scenario, method, seed)
    record_path = folder / "budgets.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for budget in sorted(budgets):
        if str(budget) in record:
            continue
        asked = -1
        while True:
            doc = _progress(folder)
            if doc is not None and doc["env_steps"] >= budget:
                break
            if doc is not None and doc["wall_clock_s"] >= 60 * max_minutes:
                print(f"{method} seed {seed}: stopped at {doc['env_steps']} steps after {max_minutes} min "
                      f"(budget {budget} not reached)", flush=True)
                return record
            iterations = max(_next_iterations(doc, budget), asked + 1)  # a trainer may write nothing for 0 rounds
            if asked >= 1 and iterations > asked and _progress(folder) is None:
                raise RuntimeError(f"{method}: training {asked} round(s) wrote no progress in {folder}")
            _train(method, robot, scenario, seed, iterations, folder)
            asked = iterations
        shutil.copyfile(folder / "model.pt", folder / f"model_at_{budget}.pt")
        record[str(budget)] = {"env_steps": doc["env_steps"], "wall_clock_s": doc["wall_clock_s"],
                               "checkpoint": str(folder / f"model_at_{budget}.pt")}
        record_path.write_text(json.dumps(record, indent=1))
        print(f"{method} seed {seed}: {doc['env_steps']} steps (budget {budget}) in {doc['wall_clock_s'] / 60:.1f} min",
              flush=True)
    return record


def reached_budgets(method: str, robot: str, scenario: str, seed: int) -> dict[str, dict]:
    """``budgets.json`` of a run as it is (empty if none)."""
    path = run_dir(robot, scenario, method, seed) / "budgets.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _next_iterations(doc: dict | None, budget: int) -> int:
    """Rounds to ask for next: 0 first (initial data only), then one more, then a jump sized by the
    steps per round seen so far."""
    if doc is None:
        return 0
    history = doc.get("history", [])
    done = doc["iteration"]
    if done < 1 or len(history) < 2:
        return done + 1
    per_round = max(1, (history[-1]["env_steps"] - history[0]["env_steps"]) / max(1, len(history) - 1))
    return done + max(1, math.ceil((budget - doc["env_steps"]) / per_round))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenario", default="crippled_joint_test")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[50_000, 250_000, 1_000_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=3, help="held-out episodes per checkpoint")
    parser.add_argument("--max-minutes", type=float, default=120.0, help="training wall-clock limit per run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--workers", type=int, default=1, help="local processes for the evaluation episodes")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--eval-only", action="store_true",
                        help="no training: evaluate the budgets already reached (runs/.../budgets.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    records = {(m, s): (reached_budgets(m, args.robot, args.train_scenario, s) if args.eval_only else
                        reach_budgets(m, args.robot, args.train_scenario, s, args.budgets, args.max_minutes))
               for s in args.seeds for m in args.methods}
    if args.train_only:
        return
    jobs = [EpisodeJob(args.robot, "mujoco", args.test_scenario, f"{m}@{b}", entry["checkpoint"], None, s, i,
                       10_000 + i, None)
            for (m, s), record in records.items() for b, entry in record.items() if int(b) in args.budgets
            for i in range(args.episodes)]
    returns: dict[str, list[float]] = {}
    for result in LocalExecutor(args.workers).run(jobs):
        returns.setdefault(result["label"], []).append(result["return"])

    print(f"\n{args.robot}: trained on {args.train_scenario}, held-out {args.test_scenario}, seeds {args.seeds}, "
          f"{args.episodes} episodes per checkpoint\n")
    print("| method | budget (env steps) | env steps used | held-out return | training wall-clock (min) |")
    print("|---|---:|---:|---:|---:|")
    for method in args.methods:
        for budget in sorted(args.budgets):
            reached = [records[method, s][str(budget)] for s in args.seeds if str(budget) in records[method, s]]
            if not reached:
                print(f"| {method} | {budget} | not reached | - | - |")
                continue
            if f"{method}@{budget}" not in returns:  # reached by some seeds' runs only in this call
                continue
            r = np.array(returns[f"{method}@{budget}"])
            steps = int(np.mean([e["env_steps"] for e in reached]))
            wall = np.mean([e["wall_clock_s"] for e in reached]) / 60
            print(f"| {method} | {budget} | {steps} | {r.mean():.1f} ± {r.std():.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
