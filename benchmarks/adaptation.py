"""Adaptation under held-out and mid-episode dynamics shifts: GrBAL, ReBAL, MB and MB+DE on the same tasks.

    python benchmarks/adaptation.py --robot half_cheetah --train-scenario crippled_joint_train \
        --test-scenarios crippled_joint_test joint_break_midepisode --seeds 0 1 2 --episodes 3 --workers 2

For every training seed, each method's model is trained on the training scenario with the same data
budget (the presets' ``training`` sections) in ``<runs-dir>/adapt_<robot>_<train>_<preset>_s<seed>``
(resumable: run the same command again after an interruption; ``--train-only`` / ``--eval-only`` split the
work, e.g. to train methods in parallel processes with ``--methods``). MB and MB+DE share the MB model.
``--set SECTION.KEY=VALUE ... --tag NAME`` gives every method the same changed training (e.g. a smaller
budget: ``training.iterations=3 meta.updates_per_iteration=500``), in run folders suffixed with NAME; a
planner setting there (``planner.upright_cost=3``: the posture term for MB and MB+DE) changes the planner
that collects the training data and the one that plays the evaluation episodes;
``--run-set planner.KEY=VALUE ...`` runs the same checkpoints with a changed planner (a planner-budget
study) or adapter (``adapter.learning_rate=3e-4``); ``--backend pybullet`` trains and evaluates on
PyBullet (the A1 quadruped is PyBullet only).
``--runs-dir`` defaults to ``$ADAPTIVE_MBRL_RUNS``, else ``runs/``.

The evaluation is an evaluation suite (:func:`adaptive_mbrl.evaluation.run_suite`): methods x training
seeds x test scenarios x ``--episodes`` episodes (environment seeds 10_000 + i, so every method faces the
same tasks; ``--episode-seed S``: S + i, fresh episodes for a setting chosen on the default ones) on
``--workers`` local processes (the same numbers for any worker count). Its run folder
``<runs-dir>/adapt_eval_<robot>_<train>[_<tag>]_<digest>`` holds ``suite.yaml`` (each method's checkpoint,
preset and run-time ``set:`` settings), the episodes, ``summary.md`` / ``.csv`` and the plots
(``returns.png``, ``damage_*.png``: the reward around a mid-episode damage). The digest covers everything
that decides the episodes (the suite, the contents of the presets the methods run with and the
checkpoints' bytes), so the same command resumes an interrupted evaluation and a retrained model or an
edited preset gets a fresh folder.

Printed: each training run's data budget and wall-clock (from its ``progress.json``), the suite's summary
(mean return, ratio to MB with its 95 % bootstrap interval, recovery steps after a mid-episode change,
control rate), and how long the episodes lasted (those short of the episode length ended in a fall).

GrBAL-guarded and ReBAL-gated are the GrBAL / ReBAL checkpoints run with their run-time safeguards, as
``set:`` settings of their suite entries (``adapter.backtracking=6``: an inner step that raises the window
loss is halved up to 6 times, else dropped; ``adapter.context_gate=true``: the encoded context is kept only
if it fits the window better than the prior's). PE-ReBAL runs its checkpoint with the gate off and
PE-ReBAL-gated with it on, whatever the preset's default (``pets_rebal``: on). GrBAL-prior (an ablation)
is the GrBAL-trained prior run without adaptation; PE-GrBAL-prior the same for PE-GrBAL (the meta-trained
ensemble planned as PE-TS: how much of PE-GrBAL's return is the model and how much its online step);
PE-GrBAL-prior+gains (+DE) plays that ensemble with ``pets_gains`` (``pets_gains_de``)'s online adapter,
PE-GrBAL-prior+gains+DE-slow with ``pets_gains_de``'s at a third of its fine-tuning rate
(``adapter.finetune_learning_rate=3e-5``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from adaptive_mbrl.config import to_dict
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.envs.scenarios import scenario_slug
from adaptive_mbrl.evaluation import LocalExecutor, SuiteConfig, resolve_checkpoint
from adaptive_mbrl.evaluation.entries import checkpoint_summary
from adaptive_mbrl.evaluation.suite import ControllerEntry, RobotBlock, validate_suite
from adaptive_mbrl.presets import ControllerPreset, load_preset, with_run_overrides
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.trainer import load_training_preset
from adaptive_mbrl.trainer import train as train_preset

from adaptive_mbrl.evaluation.results import file_sha256

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import (SLOW_FINETUNING, check_test_scenarios, default_runs_dir, keyed_folder, planner_settings,
                     play_seeds_then_pool)


class Method(NamedTuple):
    """How a method of the table is trained and run."""

    trained: str                      # preset whose training makes the run folder
    run: str                          # shipped preset the evaluation episodes play with ...
    overrides: tuple[str, ...] = ()   # ... changed by these run-time settings (a suite entry's set:)


METHODS = {"MB": Method("mb", "mb"), "MB+DE": Method("mb", "mb_de"), "GrBAL": Method("grbal", "grbal"),
           "ReBAL": Method("rebal", "rebal"), "GrBAL-prior": Method("grbal", "mb"),
           "GrBAL-guarded": Method("grbal", "grbal", ("adapter.backtracking=6",)),
           "ReBAL-gated": Method("rebal", "rebal", ("adapter.context_gate=true",)),
           # probabilistic ensembles with trajectory sampling (PETS); PE-TS+DE fine-tunes the PE-TS model
           "PE-TS": Method("pets", "pets"), "PE-TS+DE": Method("pets", "pets_de"),
           "PE-GrBAL": Method("pets_grbal", "pets_grbal"),
           # the PE-GrBAL-trained prior planned as plain PE-TS, without the inner step (an ablation)
           "PE-GrBAL-prior": Method("pets_grbal", "pets"),
           # ... and fed per-motor gains estimated online (the meta-trained model with the motor-fault prior)
           "PE-GrBAL-prior+gains": Method("pets_grbal", "pets_gains"),
           # ... and with the gains, one fine-tuning step on a copy of its weights (pets_gains_de's adapter)
           "PE-GrBAL-prior+gains+DE": Method("pets_grbal", "pets_gains_de"),
           # ... the same at a third of the fine-tuning rate (no flipped episode where 1e-4 flipped two)
           "PE-GrBAL-prior+gains+DE-slow": Method("pets_grbal", "pets_gains_de", (SLOW_FINETUNING,)),
           # the context gate explicitly off / on (pets_rebal's default is on)
           "PE-ReBAL": Method("pets_rebal", "pets_rebal", ("adapter.context_gate=false",)),
           "PE-ReBAL-gated": Method("pets_rebal", "pets_rebal", ("adapter.context_gate=true",)),
           # the PE-TS model fed per-motor gains estimated online (no training of its own)
           "PE-TS+gains": Method("pets", "pets_gains"), "PE-TS+gains+DE": Method("pets", "pets_gains_de")}
DEFAULT_METHODS = ["MB", "MB+DE", "GrBAL", "ReBAL"]
EPISODE_SEED = 10_000
"""Evaluation episode ``i`` uses environment seed ``EPISODE_SEED + i`` for every method."""

# --set changes how the models are trained; its planner settings change the planner that collects the training
# data and, so that every method runs as it was trained, the one that plays the evaluation episodes (the
# evaluation otherwise runs the shipped presets' adapters and planners)
TRAINING_SECTIONS = ("training", "meta", "model", "planner")
# --run-set changes how every method's trained model is run (a planner-budget or adapter-setting study on the
# same checkpoints)
RUN_SECTIONS = ("planner", "adapter")


def run_dir(robot: str, scenario: str, preset: str, seed: int | str, tag: str = "",
            runs_dir: Path | None = None) -> Path:
    """The training run folder of ``preset`` (seed ``seed``; ``"{seed}"`` gives the suite's checkpoint
    pattern) on ``robot`` / ``scenario``."""
    root = default_runs_dir() if runs_dir is None else Path(runs_dir)
    return root / f"adapt_{robot}_{scenario_slug(scenario)}_{preset}{'_' + tag if tag else ''}_s{seed}"


def run_settings(label: str, run_overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Method ``label``'s run-time settings: its own (e.g. ``adapter.backtracking=6``), then
    ``run_overrides`` (``--run-set``, e.g. ``planner.samples=300``)."""
    return [*METHODS[label].overrides, *run_overrides]


def run_preset(label: str, run_overrides: list[str] | tuple[str, ...] = ()) -> ControllerPreset:
    """The preset method ``label`` plays its episodes with (what its suite entry resolves to): its shipped
    preset with :func:`run_settings` applied, named ``label``."""
    preset = with_run_overrides(load_preset(METHODS[label].run), run_settings(label, run_overrides))
    return dataclasses.replace(preset, name=label)


def train(robot: str, scenario: str, preset_name: str, seed: int, folder: Path, iterations: int | None = None,
          backend: str = "mujoco", overrides: list[str] | None = None) -> Path:
    """Train (or finish training) one preset in ``folder``; returns its checkpoint. ``iterations`` and
    ``overrides`` (``SECTION.KEY=VALUE``) change the preset's training the same way for every method, so
    the data budgets stay equal."""
    preset = load_training_preset(preset_name, iterations, overrides or [])
    return train_preset(preset, RunSettings(robot, scenario, backend=backend, seed=seed), folder, resume=True)


def checkpoint_pattern(args: argparse.Namespace, label: str) -> str:
    """Method ``label``'s checkpoint path with the suite's ``{seed}`` placeholder."""
    trained = METHODS[label].trained
    return str(run_dir(args.robot, args.train_scenario, trained, "{seed}", args.tag, args.runs_dir) / "model.pt")


def build_suite(args: argparse.Namespace, checkpoints: dict[tuple[str, int], Path],
                presets: dict[str, ControllerPreset], seeds: list[int]) -> tuple[SuiteConfig, Path]:
    """The evaluation suite of training seeds ``seeds`` (validated like a suite file) and its run folder.
    ``presets``: what each method's entry resolves to (:func:`run_preset`), so that an edited shipped preset
    changes the folder."""
    patterns = {label: checkpoint_pattern(args, label) for label in args.methods}
    identity = {"robot": args.robot, "backend": args.backend, "train": args.train_scenario,
                "scenarios": args.test_scenarios, "seeds": seeds, "episodes": args.episodes,
                "episode_steps": args.episode_steps, "checkpoints": patterns,
                "presets": {label: to_dict(p) for label, p in presets.items()},
                "weights": {f"{label} s{seed}": file_sha256(path) for (label, seed), path in checkpoints.items()
                            if seed in seeds}}
    if args.episode_seed != EPISODE_SEED:  # the default keeps the folders of earlier evaluations
        identity["episode_seed"] = args.episode_seed
    folder = keyed_folder(args.runs_dir, f"adapt_eval_{args.robot}_{scenario_slug(args.train_scenario)}"
                          f"{'_' + args.tag if args.tag else ''}", identity)
    entries = [ControllerEntry(label, patterns[label], METHODS[label].run,
                               set=run_settings(label, args.run_overrides)) for label in args.methods]
    suite = SuiteConfig(name=f"adapt_{args.robot}_{scenario_slug(args.train_scenario)}", seeds=list(seeds),
                        episodes=args.episodes, episode_steps=args.episode_steps, episode_seed=args.episode_seed,
                        baseline=baseline_label(args),
                        robots=[RobotBlock(args.robot, list(args.test_scenarios), entries, args.backend)],
                        description=f"{', '.join(args.methods)} trained on {args.train_scenario}")
    validate_suite(suite, "adaptation.py")
    return suite, folder


def evaluate(args: argparse.Namespace, checkpoints: dict[tuple[str, int], Path],
             presets: dict[str, ControllerPreset]) -> Path:
    """Play the evaluation episodes, seed by seed (:func:`play_seeds_then_pool`: a study that adds a training
    seed plays only the new seed's episodes); returns the folder of the suite of all ``args.seeds``."""
    executor = LocalExecutor(args.workers)
    suite, folder = build_suite(args, checkpoints, presets, list(args.seeds))
    changed = f", run with {' '.join(args.run_overrides)}" if args.run_overrides else ""
    print(f"\n{args.robot}, trained on {args.train_scenario}, seeds {args.seeds}, {args.episodes} episodes each"
          f"{changed}; evaluation in {folder}\n", flush=True)
    play_seeds_then_pool(suite, folder, list(args.seeds), lambda seeds: build_suite(args, checkpoints, presets, seeds),
                         executor)
    return folder


def baseline_label(args: argparse.Namespace) -> str:
    """The method the ratios are taken against: ``--baseline``, else MB when it runs, else the first method."""
    if args.baseline is not None:
        return args.baseline
    return "MB" if "MB" in args.methods else args.methods[0]


def print_training_table(checkpoints: dict[tuple[str, int], Path]) -> None:
    """Each trained run's data budget and wall-clock, from its ``progress.json`` (a resumed run counts the
    time of every call that trained it; methods that share a run folder are listed once). A folder holding
    only a checkpoint (e.g. a shipped one copied in as ``model.pt``) shows the budget its metadata records
    (:func:`checkpoint_summary`), without a wall-clock."""
    runs: dict[Path, list[str]] = {}  # checkpoint -> methods (those sharing a run share its checkpoint)
    for (method, seed), checkpoint in checkpoints.items():
        runs.setdefault(checkpoint, []).append(method)
    print("\n| run | methods | env steps | rounds | training wall-clock (min) |\n|---|---|---|---|---|")
    for checkpoint, methods in runs.items():
        folder = checkpoint.parent
        progress_file = folder / "progress.json"
        if not progress_file.exists():
            meta = checkpoint_summary(checkpoint).get("meta") if checkpoint.is_file() else None
            if not isinstance(meta, dict):
                print(f"| {folder.name} | {', '.join(methods)} | not trained | - | - |")
            else:
                print(f"| {folder.name} | {', '.join(methods)} | {meta.get('env_steps', '?')} | "
                      f"{meta.get('iteration', '?')} | - (checkpoint only, no progress.json) |")
            continue
        progress = json.loads(progress_file.read_text())
        print(f"| {folder.name} | {', '.join(methods)} | {progress['env_steps']} | {progress['iteration']} | "
              f"{progress['wall_clock_s'] / 60:.1f} |")


def print_survival_table(folder: Path, methods: list[str], full_length: int) -> None:
    """How long the episodes lasted (from the suite's ``episodes.json``): the summary's returns mix falls
    (short episodes) with full-length runs."""
    episodes = json.loads((folder / "episodes.json").read_text())
    print("| scenario | method | steps survived (mean) | episodes to the end |\n|---|---|---:|---:|")
    for scenario in dict.fromkeys(e["scenario"] for e in episodes):
        for method in methods:
            steps = [e["steps"] for e in episodes if e["scenario"] == scenario and e["label"] == method]
            if steps:
                print(f"| {scenario} | {method} | {np.mean(steps):.0f} | "
                      f"{sum(s >= full_length for s in steps)} / {len(steps)} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenarios", nargs="+", default=["crippled_joint_test", "joint_break_midepisode"])
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--baseline", default=None, choices=list(METHODS),
                        help="method the ratios are taken against (default: MB if it runs, else the first method)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=3, help="evaluation episodes per seed and scenario")
    parser.add_argument("--episode-seed", type=int, default=EPISODE_SEED,
                        help="environment seed of the first evaluation episode (episode i: this + i)")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="evaluation episode length in control steps (default: the robot's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 when running in parallel)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="collection rounds for every method (default: the presets'; equal data budgets)")
    parser.add_argument("--workers", type=int, default=1, help="local processes for the evaluation episodes")
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(),
                        help="where the training and evaluation run folders live (default: $ADAPTIVE_MBRL_RUNS "
                        "or runs/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="change every method's training the same way, e.g. training.iterations=3 "
                        f"meta.updates_per_iteration=500 (sections: {', '.join(TRAINING_SECTIONS)}; a planner "
                        "setting, e.g. planner.upright_cost=3, also runs the evaluation episodes)")
    parser.add_argument("--tag", default="", help="run-folder suffix, required with --set so that runs "
                        "trained differently never share a folder")
    parser.add_argument("--run-set", dest="run_overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="run every method's trained model with a changed planner or adapter, e.g. "
                        "planner.samples=300 planner.iterations=5 or adapter.learning_rate=3e-4 (the checkpoints "
                        "are the same; the episodes get their own folder)")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--eval-only", action="store_true")
    args = parser.parse_args(argv)
    for flag, overrides, sections in (("--set", args.overrides, TRAINING_SECTIONS),
                                      ("--run-set", args.run_overrides, RUN_SECTIONS)):
        bad = [o for o in overrides if o.split(".")[0] not in sections]
        if bad:
            parser.error(f"{flag} {bad[0]}: only the sections {', '.join(sections)} may be changed")
    if args.overrides and not args.tag:
        parser.error("--set needs --tag NAME (the run folders get it as a suffix)")
    # the methods collected their data with --set's planner settings, so their episodes run with them too
    args.run_overrides = [*planner_settings(args.overrides), *args.run_overrides]  # --run-set wins
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if args.episode_seed < 0:
        parser.error(f"--episode-seed {args.episode_seed}: allowed: an integer >= 0")
    if args.baseline is not None and args.baseline not in args.methods:
        parser.error(f"--baseline {args.baseline} is not one of --methods ({', '.join(args.methods)})")
    return args


def main() -> None:
    print(provenance_line(), flush=True)
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = {label: run_preset(label, args.run_overrides) for label in args.methods}  # bad settings fail first
    if not args.train_only:
        check_test_scenarios(args.robot, args.test_scenarios, args.episode_steps)

    checkpoints: dict[tuple[str, int], Path] = {}
    trained: set[Path] = set()
    for seed in args.seeds:
        for method in args.methods:
            preset = METHODS[method].trained
            checkpoints[method, seed] = resolve_checkpoint(checkpoint_pattern(args, method), seed)
            folder = checkpoints[method, seed].parent
            if args.eval_only or folder in trained:  # MB and MB+DE share a run
                continue
            trained.add(folder)
            start = time.perf_counter()
            train(args.robot, args.train_scenario, preset, seed, folder, args.iterations, args.backend,
                  args.overrides)
            print(f"trained {preset} seed {seed}: {folder} ({time.perf_counter() - start:.0f} s in this call)",
                  flush=True)
    print_training_table(checkpoints)
    if args.train_only:
        return
    missing = sorted({str(path) for path in checkpoints.values() if not path.is_file()})
    if missing:
        raise SystemExit(f"adaptation.py: missing checkpoints (train them without --eval-only): {', '.join(missing)}")

    folder = evaluate(args, checkpoints, presets)
    print((folder / "summary.md").read_text())
    print_survival_table(folder, args.methods, args.episode_steps or load_robot(args.robot).episode_steps)
    if any(folder.glob("damage_*.png")):
        print(f"\nplots of the reward around a mid-episode damage: {folder}/damage_*.png")


if __name__ == "__main__":
    main()
