"""Held-out return against environment steps of training, for GrBAL, ReBAL, MB, PEARL and RL² on one task family.

    python benchmarks/sample_efficiency.py --robot half_cheetah --train-scenario crippled_joint_train \
        --test-scenario crippled_joint_test --budgets 50000 250000 1000000 --seeds 0 --episodes 3

Each method trains with its shipped preset (``controllers/*.yaml``, ``controllers/baselines/*.yaml``) in
``<runs-dir>/sample_<robot>_<train>_<method>[_<tag>]_s<seed>``, extended round by round (a resumed run may
only grow ``training.iterations``) until its environment steps reach each budget in turn; the checkpoint at
that point is kept as ``model_at_<budget>.pt`` with its step count and training wall-clock in
``budgets.json``. A run that reaches ``--max-minutes`` of training wall-clock stops there and the table says
which budgets it did not reach. ``--set SECTION.KEY=VALUE ... --tag NAME`` changes the model-based presets
(MB, GrBAL, ReBAL) the same way (e.g. a smaller model), in run folders suffixed with NAME.
``--runs-dir`` defaults to ``$ADAPTIVE_MBRL_RUNS``, else ``runs/``.

The kept checkpoints are evaluated as a suite (:func:`adaptive_mbrl.evaluation.run_suite`): one controller
``<method>@<budget>`` each, ``--episodes`` episodes of the held-out scenario per training seed
(environment seeds 10_000 + i, the same tasks for every method) on ``--workers`` local processes, in
``<runs-dir>/sample_eval_<robot>_<train>_<test>[_<tag>]_<digest>`` (the digest covers the suite and the
checkpoints' bytes: the same command resumes it, new checkpoints get a fresh folder). The script prints
the suite's summary (ratios to the first method at its largest budget), then the data each budget
actually used and its training wall-clock.

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

from adaptive_mbrl.config import to_dict
from adaptive_mbrl.evaluation import LocalExecutor, SuiteConfig, run_suite
from adaptive_mbrl.envs.scenarios import scenario_slug
from adaptive_mbrl.evaluation.suite import ControllerEntry, RobotBlock, validate_suite
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.trainer import AnyPreset, load_training_preset, train

from adaptive_mbrl.evaluation.results import file_sha256

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import check_test_scenarios, default_runs_dir, keyed_folder

MODEL_BASED = {"MB": "mb", "GrBAL": "grbal", "ReBAL": "rebal"}
BASELINES = {"PEARL": "pearl", "RL2": "rl2"}
METHODS = [*MODEL_BASED, *BASELINES]
EPISODE_SEED = 10_000
"""Evaluation episode ``i`` uses environment seed ``EPISODE_SEED + i`` for every method."""


def run_dir(robot: str, scenario: str, method: str, seed: int | str, tag: str = "",
            runs_dir: Path | None = None) -> Path:
    """``method``'s training run folder (``seed="{seed}"``: the suite's checkpoint pattern)."""
    root = default_runs_dir() if runs_dir is None else Path(runs_dir)
    return root / f"sample_{robot}_{scenario_slug(scenario)}_{method.lower()}{'_' + tag if tag else ''}_s{seed}"


def method_preset(method: str, iterations: int, overrides: list[str]) -> AnyPreset:
    """``method``'s shipped preset with ``iterations`` collection rounds; ``overrides``
    (``SECTION.KEY=VALUE``) apply to the model-based presets only."""
    name = {**MODEL_BASED, **BASELINES}[method]
    return load_training_preset(name, iterations, overrides if method in MODEL_BASED else [])


def _progress(folder: Path) -> dict | None:
    path = folder / "progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def reach_budgets(method: str, robot: str, scenario: str, seed: int, budgets: list[int], max_minutes: float,
                  folder: Path, overrides: list[str]) -> dict[str, dict]:
    """Extend the run in ``folder`` until each budget is reached (or the time limit); returns
    ``budgets.json``."""
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
            train(method_preset(method, iterations, overrides), RunSettings(robot, scenario, seed=seed), folder,
                  resume=True, progress=False)
            asked = iterations
        shutil.copyfile(folder / "model.pt", folder / f"model_at_{budget}.pt")
        if (folder / "model.yaml").is_file():  # the checkpoint's metadata twin (read by suite validation)
            shutil.copyfile(folder / "model.yaml", folder / f"model_at_{budget}.yaml")
        record[str(budget)] = {"env_steps": doc["env_steps"], "wall_clock_s": doc["wall_clock_s"],
                               "checkpoint": str(folder / f"model_at_{budget}.pt")}
        record_path.write_text(json.dumps(record, indent=1))
        print(f"{method} seed {seed}: {doc['env_steps']} steps (budget {budget}) in {doc['wall_clock_s'] / 60:.1f} min",
              flush=True)
    return record


def reached_budgets(folder: Path) -> dict[str, dict]:
    """``budgets.json`` of the run in ``folder`` as it is (empty if none)."""
    path = folder / "budgets.json"
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


def build_suite(args: argparse.Namespace, records: dict[tuple[str, int], dict[str, dict]]) -> tuple[SuiteConfig, Path]:
    """The evaluation suite of every kept checkpoint (``<method>@<budget>``; a seed whose run did not reach
    the budget is skipped) and its run folder."""
    entries, weights = [], {}
    for method in args.methods:
        for budget in sorted(args.budgets):
            reached = {s: records[method, s][str(budget)] for s in args.seeds if str(budget) in records[method, s]}
            if not reached:
                continue
            label = f"{method}@{budget}"
            pattern = run_dir(args.robot, args.train_scenario, method, "{seed}", args.tag, args.runs_dir)
            entries.append(ControllerEntry(label, str(pattern / f"model_at_{budget}.pt"), optional=True))
            weights.update({f"{label} s{s}": file_sha256(entry["checkpoint"]) for s, entry in reached.items()})
    if not entries:
        raise SystemExit("sample_efficiency.py: no run reached any budget yet (train without --eval-only)")
    baseline = max((e.label for e in entries if e.label.startswith(f"{args.methods[0]}@")),
                   key=lambda label: int(label.split("@")[1]), default=entries[0].label)
    suite = SuiteConfig(name=f"sample_{args.robot}_{scenario_slug(args.train_scenario)}", seeds=list(args.seeds),
                        episodes=args.episodes, episode_steps=args.episode_steps, episode_seed=EPISODE_SEED,
                        baseline=baseline, robots=[RobotBlock(args.robot, [args.test_scenario], entries)],
                        description=f"held-out return per training budget, trained on {args.train_scenario}")
    validate_suite(suite, "sample_efficiency.py")
    folder = keyed_folder(args.runs_dir, f"sample_eval_{args.robot}_{scenario_slug(args.train_scenario)}_"
                          f"{scenario_slug(args.test_scenario)}{'_' + args.tag if args.tag else ''}",
                          {"suite": to_dict(suite), "weights": weights})
    return suite, folder


def print_budget_table(args: argparse.Namespace, records: dict[tuple[str, int], dict[str, dict]]) -> None:
    """The environment steps each budget actually used and the training wall-clock to reach it (seed means)."""
    print("| method | budget (env steps) | env steps used | seeds reached | training wall-clock (min) |")
    print("|---|---:|---:|---:|---:|")
    for method in args.methods:
        for budget in sorted(args.budgets):
            reached = [records[method, s][str(budget)] for s in args.seeds if str(budget) in records[method, s]]
            if not reached:
                print(f"| {method} | {budget} | not reached | 0 / {len(args.seeds)} | - |")
                continue
            steps = int(np.mean([e["env_steps"] for e in reached]))
            wall = np.mean([e["wall_clock_s"] for e in reached]) / 60
            print(f"| {method} | {budget} | {steps} | {len(reached)} / {len(args.seeds)} | {wall:.1f} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenario", default="crippled_joint_test")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[50_000, 250_000, 1_000_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=3, help="held-out episodes per checkpoint")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="evaluation episode length in control steps (default: the robot's)")
    parser.add_argument("--max-minutes", type=float, default=120.0, help="training wall-clock limit per run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--workers", type=int, default=1, help="local processes for the evaluation episodes")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(),
                        help="where the run folders live (default: $ADAPTIVE_MBRL_RUNS or runs/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="change the model-based presets (MB, GrBAL, ReBAL) the same way, e.g. "
                        "model.hidden_sizes=[64,64] (training.iterations is set by the budgets)")
    parser.add_argument("--tag", default="", help="run-folder suffix, required with --set")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--eval-only", action="store_true",
                        help="no training: evaluate the budgets already reached (<runs-dir>/.../budgets.json)")
    args = parser.parse_args()
    if args.overrides and not args.tag:
        parser.error("--set needs --tag NAME (the run folders get it as a suffix)")
    if any(o.startswith("training.iterations=") for o in args.overrides):
        parser.error("--set training.iterations: the budgets decide the rounds")
    if args.episodes < 1 or min(args.budgets) < 1:
        parser.error("--episodes and --budgets must be at least 1")
    return args


def main() -> None:
    print(provenance_line(), flush=True)
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.overrides:
        method_preset("MB", 0, args.overrides)  # a bad setting fails before anything trains
    if not args.train_only:
        check_test_scenarios(args.robot, [args.test_scenario], args.episode_steps)
    records = {}
    for seed in args.seeds:
        for method in args.methods:
            folder = run_dir(args.robot, args.train_scenario, method, seed, args.tag, args.runs_dir)
            records[method, seed] = (reached_budgets(folder) if args.eval_only else reach_budgets(
                method, args.robot, args.train_scenario, seed, args.budgets, args.max_minutes, folder,
                args.overrides))
    if args.train_only:
        print()
        print_budget_table(args, records)
        return
    suite, folder = build_suite(args, records)
    print(f"\n{args.robot}: trained on {args.train_scenario}, held-out {args.test_scenario}, seeds {args.seeds}, "
          f"{args.episodes} episodes per checkpoint; evaluation in {folder}\n", flush=True)
    run_suite(suite, folder, LocalExecutor(args.workers))
    print((folder / "summary.md").read_text())
    print_budget_table(args, records)


if __name__ == "__main__":
    main()
