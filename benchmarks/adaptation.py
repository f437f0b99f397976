"""Adaptation under held-out and mid-episode dynamics shifts: GrBAL, ReBAL, MB and MB+DE on the same tasks.

    python benchmarks/adaptation.py --robot half_cheetah --train-scenario crippled_joint_train \
        --test-scenarios crippled_joint_test joint_break_midepisode --seeds 0 1 2 --episodes 3 --workers 2

For every training seed, each method's model is trained on the training scenario with the same data
budget (the presets' ``training`` sections) in ``runs/adapt_<robot>_<train>_<preset>_s<seed>`` (resumable:
run the same command again after an interruption; ``--train-only`` / ``--eval-only`` split the work, e.g.
to train methods in parallel processes with ``--methods``). MB and MB+DE share the MB model.
``--set SECTION.KEY=VALUE ... --tag NAME`` gives every method the same changed training (e.g. a smaller
budget: ``training.iterations=3 meta.updates_per_iteration=500``), in run folders suffixed with NAME;
``--run-set planner.KEY=VALUE ...`` runs the same checkpoints with a changed planner (a planner-budget
study; the changed presets are written to ``runs/presets``); ``--backend pybullet`` trains and
evaluates on PyBullet (the A1 quadruped is PyBullet only). Evaluation episodes use seeds 10_000 + i,
so every method faces the same tasks; they run on ``--workers`` local
processes (the suite executor: the same numbers for any worker count) and are cached in
``runs/adapt_eval_cache_<robot>.jsonl`` by checkpoint, so a rerun only plays new episodes. For scenarios with a mid-episode
event, the table adds the recovery: steps after the damage until the 5-step moving average of the reward
is back to >= 80 % of its post-damage steady level (mean reward over damage+50 .. damage+200).
``x MB`` comes with its 95 % bootstrap interval (training seeds, then episodes paired by environment seed,
resampled:
:mod:`adaptive_mbrl.evaluation.statistics`); ``episodes to the end`` counts the episodes that ran the robot's
full episode length (the others ended in a fall).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import time
import warnings
from typing import NamedTuple
from pathlib import Path

import numpy as np
import torch

from adaptive_mbrl.evaluation import EpisodeJob, LocalExecutor, recovery_steps
from adaptive_mbrl.evaluation.statistics import by_seed, ratio_interval
from adaptive_mbrl.envs import get_scenario
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.presets import load_preset, save_preset, with_overrides
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.trainer import load_training_preset
from adaptive_mbrl.trainer import train as train_preset


class Method(NamedTuple):
    """How a method of the table is trained and run."""

    trained: str                   # preset whose training makes the run folder
    run: str                       # preset the evaluation episodes play with
    checkpoint: str = "model.pt"   # file in the run folder
    overrides: tuple[str, ...] = ()  # run-time settings changed on top of ``run`` (like adaptive-mbrl run --set)


# Outside the default set: GrBAL-prior (ablation), the GrBAL-trained prior run without adaptation;
# GrBAL-guarded / ReBAL-gated, the GrBAL / ReBAL checkpoints run with their run-time safeguards
# (adapter.backtracking=6; adapter.context_gate=true).
BACKTRACKING, CONTEXT_GATE = "adapter.backtracking=6", "adapter.context_gate=true"
METHODS = {"MB": Method("mb", "mb"), "MB+DE": Method("mb", "mb_de"), "GrBAL": Method("grbal", "grbal"),
           "ReBAL": Method("rebal", "rebal"), "GrBAL-prior": Method("grbal", "mb"),
           "GrBAL-guarded": Method("grbal", "grbal", overrides=(BACKTRACKING,)),
           "ReBAL-gated": Method("rebal", "rebal", overrides=(CONTEXT_GATE,))}
DEFAULT_METHODS = ["MB", "MB+DE", "GrBAL", "ReBAL"]


# --set may change how the models are trained, never how they are run (the evaluation loads the presets'
# adapters and planners by name)
TRAINING_SECTIONS = ("training", "meta", "model")
# --run-set changes how every method's trained model is run (a planner-budget study on the same checkpoints)
RUN_SECTIONS = ("planner",)


def run_preset(name: str, overrides: list[str]) -> str:
    """The preset an evaluation episode runs with: ``name`` itself, or, with ``overrides``, a copy of it
    written to ``runs/presets/<name>_<hash of the overrides>.yaml`` (validated like a shipped preset)."""
    if not overrides:
        return name
    digest = hashlib.sha256(" ".join(sorted(overrides)).encode()).hexdigest()[:8]
    return str(save_preset(with_overrides(load_preset(name), overrides), f"runs/presets/{name}_{digest}.yaml"))


def run_dir(robot: str, scenario: str, preset: str, seed: int, tag: str = "") -> Path:
    return Path(f"runs/adapt_{robot}_{scenario}_{preset}{'_' + tag if tag else ''}_s{seed}")


def train(robot: str, scenario: str, preset_name: str, seed: int, iterations: int | None = None,
          backend: str = "mujoco", overrides: list[str] | None = None, tag: str = "") -> Path:
    """Train (or finish training) one preset; returns its checkpoint. ``iterations`` and ``overrides``
    (``SECTION.KEY=VALUE``) change the preset's training the same way for every method, so the data
    budgets stay equal."""
    preset = load_training_preset(preset_name, iterations, overrides or [])
    folder = run_dir(robot, scenario, preset_name, seed, tag)
    return train_preset(preset, RunSettings(robot, scenario, backend=backend, seed=seed), folder, resume=True)


def evaluate(jobs: list[EpisodeJob], workers: int, cache_path: Path) -> dict[str, dict]:
    """Run the evaluation episodes on ``workers`` local processes; results are cached in ``cache_path``
    by job key, checkpoint modification time and the run preset's settings, so a rerun only plays what
    changed (an edited preset replays its episodes; entries written before the settings were recorded
    are kept)."""
    cache = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            entry = json.loads(line)
            cache[entry["cache_key"]] = entry

    def cache_key(job: EpisodeJob) -> str:
        return f"{job.key}|{job.checkpoint}|{Path(job.checkpoint).stat().st_mtime_ns}|{job.preset}"

    def fresh(job: EpisodeJob) -> bool:
        entry = cache.get(cache_key(job))
        return entry is not None and entry.get("preset_settings", settings(job)) == settings(job)

    todo = [j for j in jobs if not fresh(j)]
    # one os.write per line on an O_APPEND descriptor: evaluations running in parallel processes never
    # interleave their (20 kB) lines in the shared cache
    fd = os.open(cache_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for result in LocalExecutor(workers).run(todo):
            job = next(j for j in todo if j.key == result["key"] and j.checkpoint == result["checkpoint"])
            result["cache_key"], result["preset_settings"] = cache_key(job), settings(job)
            cache[result["cache_key"]] = result
            line = (json.dumps(result) + "\n").encode()
            if os.write(fd, line) != len(line):
                raise OSError(f"short write to {cache_path}: the disk may be full")
    finally:
        os.close(fd)
    return {cache_key(j): cache[cache_key(j)] for j in jobs}


def settings(job: EpisodeJob) -> str:
    """The run preset's adapter and planner sections (what decides how an episode is played), as text."""
    return _preset_settings(job.preset)


@functools.lru_cache(maxsize=None)
def _preset_settings(name: str) -> str:
    preset = load_preset(name)
    return json.dumps({"adapter": to_dict(preset.adapter), "planner": to_dict(preset.planner)}, sort_keys=True)


def print_training_table(checkpoints: dict[tuple[str, int], Path]) -> None:
    """Each trained run's data budget and wall-clock, from its ``progress.json`` (a resumed run counts the
    time of every call that trained it; methods that share a run folder are listed once)."""
    runs: dict[Path, list[str]] = {}
    for (method, seed), checkpoint in checkpoints.items():
        runs.setdefault(checkpoint.parent, []).append(method)
    print("\n| run | methods | env steps | rounds | training wall-clock (min) |\n|---|---|---|---|---|")
    for folder, methods in runs.items():
        progress_file = folder / "progress.json"
        if not progress_file.exists():
            print(f"| {folder.name} | {', '.join(methods)} | not trained | - | - |")
            continue
        progress = json.loads(progress_file.read_text())
        print(f"| {folder.name} | {', '.join(methods)} | {progress['env_steps']} | {progress['iteration']} | "
              f"{progress['wall_clock_s'] / 60:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenarios", nargs="+", default=["crippled_joint_test", "joint_break_midepisode"])
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=3, help="evaluation episodes per seed and scenario")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 when running in parallel)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="collection rounds for every method (default: the presets'; equal data budgets)")
    parser.add_argument("--workers", type=int, default=1, help="local processes for the evaluation episodes")
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="change every method's training the same way, e.g. training.iterations=3 "
                        f"meta.updates_per_iteration=500 (sections: {', '.join(TRAINING_SECTIONS)})")
    parser.add_argument("--tag", default="", help="run-folder suffix, required with --set so that runs "
                        "trained differently never share a folder")
    parser.add_argument("--run-set", dest="run_overrides", nargs="+", default=[], metavar="planner.KEY=VALUE",
                        help="run every method's trained model with a changed planner, e.g. planner.samples=300 "
                        "planner.iterations=5 (the checkpoints are the same; the episodes are cached apart)")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--eval-only", action="store_true")
    args = parser.parse_args()
    for message in ("Mean of empty slice", "invalid value encountered"):  # bins after every episode ended
        warnings.filterwarnings("ignore", message, RuntimeWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    bad = [o for o in args.overrides if o.split(".")[0] not in TRAINING_SECTIONS]
    if bad:
        parser.error(f"--set {bad[0]}: only the sections {', '.join(TRAINING_SECTIONS)} may be changed")
    bad = [o for o in args.run_overrides if o.split(".")[0] not in RUN_SECTIONS]
    if bad:
        parser.error(f"--run-set {bad[0]}: only the sections {', '.join(RUN_SECTIONS)} may be changed")
    if args.overrides and not args.tag:
        parser.error("--set needs --tag NAME (the run folders get it as a suffix)")

    checkpoints: dict[tuple[str, int], Path] = {}
    for seed in args.seeds:
        for method in args.methods:
            preset = METHODS[method].trained
            folder = run_dir(args.robot, args.train_scenario, preset, seed, args.tag)
            checkpoints[method, seed] = folder / METHODS[method].checkpoint
            if args.eval_only:
                continue
            start = time.perf_counter()
            train(args.robot, args.train_scenario, preset, seed, args.iterations, args.backend, args.overrides,
                  args.tag)
            print(f"trained {preset} seed {seed}: {folder} ({time.perf_counter() - start:.0f} s in this call)",
                  flush=True)
    print_training_table(checkpoints)
    if args.train_only:
        return

    presets = {method: run_preset(METHODS[method].run, [*METHODS[method].overrides, *args.run_overrides])
               for method in args.methods}
    jobs = [EpisodeJob(args.robot, args.backend, scenario, method, str(checkpoints[method, seed]), presets[method],
                       seed, i, 10_000 + i, None)
            for scenario in args.test_scenarios for method in args.methods for seed in args.seeds
            for i in range(args.episodes)]
    results = list(evaluate(jobs, args.workers, Path(f"runs/adapt_eval_cache_{args.robot}.jsonl")).values())
    changed = f", run with {' '.join(args.run_overrides)}" if args.run_overrides else ""
    print(f"\n{args.robot}, trained on {args.train_scenario}, seeds {args.seeds}, {args.episodes} episodes each"
          f"{changed}\n")
    print("| scenario | method | mean return | std (episodes) | std (seed means) | x MB | 95 % interval (x MB) "
          "| recovery steps (80 %) | steps survived | episodes to the end | control Hz |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    length = load_robot(args.robot).episode_steps
    for scenario in args.test_scenarios:
        events = get_scenario(args.robot, scenario).events
        damage = events[0].at_step if events else None
        curves: dict[str, list[np.ndarray]] = {}
        mb_results = [r for r in results if r["scenario"] == scenario and r["label"] == "MB"]
        mb = np.mean([np.sum(r["rewards"]) for r in mb_results]) if mb_results else float("nan")
        for method in args.methods:
            mine = [r for r in results if r["scenario"] == scenario and r["label"] == method]
            curves[method] = [np.asarray(r["rewards"]) for r in mine]
            returns = np.array([r["return"] for r in mine])
            seed_means = [np.mean([r["return"] for r in mine if r["seed"] == s]) for s in args.seeds]
            low, high = (ratio_interval(by_seed(mine), by_seed(mb_results), paired=True) if mb_results
                         else (np.nan, np.nan))
            interval = "-" if method == "MB" or np.isnan(low) else f"[{low:.2f}, {high:.2f}]"
            full = sum(r["steps"] >= length for r in mine)  # the others ended in a fall
            hz = sum(r["steps"] for r in mine) / sum(r["wall_s"] for r in mine)
            recovery = (f"{np.nanmean([recovery_steps(c, damage) for c in curves[method]]):.0f}"
                        if damage is not None else "-")
            print(f"| {scenario} | {method} | {returns.mean():.1f} | {returns.std():.1f} | {np.std(seed_means):.1f} | "
                  f"{returns.mean() / mb:.2f} | {interval} | {recovery} | "
                  f"{np.mean([r['steps'] for r in mine]):.0f} | {full} / {len(mine)} | {hz:.0f} |",
                  flush=True)
        if damage is not None:
            print(f"\nreward per step around the damage at step {damage} (mean over episodes, 10-step bins):\n")
            bins = list(range(damage - 20, damage + 80, 10))
            print("| method | episodes running at the damage | " + " | ".join(f"{b - damage:+d}" for b in bins) + " |")
            print("|---|---|" + "---|" * len(bins))
            for method, cs in curves.items():
                padded = np.full((len(cs), max(map(len, cs))), np.nan)  # episodes that fell end early
                for row, c in zip(padded, cs):
                    row[:len(c)] = c
                mean = np.nanmean(padded, axis=0)
                running = f"{sum(len(c) > damage for c in cs)} / {len(cs)}"
                print(f"| {method} | {running} | " + " | ".join(f"{mean[b:b + 10].mean():.2f}" for b in bins) + " |")
            print()


if __name__ == "__main__":
    main()
