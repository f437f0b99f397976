"""Held-out return against environment steps of training, per method, on several held-out scenarios.

    python benchmarks/sample_efficiency.py --robot half_cheetah --train-scenario crippled_joint_train \
        --test-scenarios crippled_joint_test joint_break_midepisode --budgets 50000 200000 \
        --method-budgets RL2=50000,1000000,5000000 --seeds 0 1 2 --episodes 3

Methods (``--methods``, default MB GrBAL ReBAL PEARL RL2): MB, GrBAL, ReBAL and the probabilistic-ensemble
PE (preset ``pets``), PE-GrBAL (``pets_grbal``), PE-ReBAL (``pets_rebal``), all trained like the model-based
methods, PE+gains and PE+gains+DE (PE's runs played with the presets ``pets_gains`` / ``pets_gains_de``:
per-motor gains estimated online, without and with online fine-tuning of the weights; no training of
their own), PE-GrBAL-prior+gains, PE-GrBAL-prior+gains+DE and PE-GrBAL-prior+gains+DE-slow (PE-GrBAL's runs
played likewise; ``-slow``: fine-tuning at ``adapter.finetune_learning_rate=3e-5``, a third of the preset's), and the
model-free PEARL and RL². Each trains with its shipped preset (``controllers/*.yaml``,
``controllers/baselines/*.yaml``; ``--method-presets METHOD=PATH.yaml`` swaps in another file, e.g. a smaller
PEARL) in ``<runs-dir>/sample_<robot>_<train>_<method>[_<tag>]_s<seed>`` (``pe_rebal`` for PE-ReBAL),
extended round by round (a resumed run may only grow ``training.iterations``) until its environment steps
reach each of its budgets in turn: ``--budgets``, or the method's own list from ``--method-budgets
METHOD=B1,B2,...`` (e.g. RL² to millions while the model-based methods stop at 200k). The checkpoint at
that point is kept as ``model_at_<budget>.pt`` with its step count, gradient steps and training wall-clock
in ``budgets.json``. A run that reaches ``--max-minutes`` of training wall-clock (``--method-max-minutes
METHOD=MINUTES``: the method's own limit) stops there and the table says which budgets it did not reach.
``--set SECTION.KEY=VALUE ... --tag NAME`` changes every model-based preset the same way (e.g. a smaller
model, or ``planner.upright_cost=3``: MB with the posture term the PE presets have), in run folders suffixed
with NAME; PEARL and RL², which ``--set`` does not change, keep their untagged runs. ``--method-presets``
needs a tag too (on that method's folder). ``--runs-dir`` defaults to ``$ADAPTIVE_MBRL_RUNS``, else ``runs/``.

The kept checkpoints are evaluated as a suite (:func:`adaptive_mbrl.evaluation.run_suite`): one controller
``<label>@<budget>`` each, ``--episodes`` episodes of every held-out scenario (``--test-scenarios``;
``--test-scenario`` is an alias) per training seed (environment seeds 10_000 + i, the same tasks for every
method; ``--episode-seed S``: S + i, fresh episodes for a setting chosen on the default ones, in their own
folder) on ``--workers`` local processes, in ``<runs-dir>/sample_eval_<robot>_<train>_<tests>[_<tag>]_<digest>``
(the digest covers the suite and the checkpoints' bytes: the same command resumes it, new checkpoints get a
fresh folder; the shipped presets that PE+gains+DE-like methods play are kept in ``played_presets.json``
there, and an edited one is refused rather than resumed). With several ``--seeds`` each seed's episodes are
played in the folder a one-seed command keys for it and pooled: a budget or a training seed reached later
plays only that seed's episodes again (all of them).
PEARL's checkpoint is evaluated twice (suite ``set:``): ``PEARL`` in its original between-episode protocol
(``adapt_within_episode=false``: z inferred at the episode's start from the task's
earlier episodes and fixed within the episode; each scored episode follows ``--pearl-warmup`` unscored
episodes of the same task, default 1, the suite entry's ``warmup_episodes``; 0: z from the prior) and
``PEARL-within`` (``adapt_within_episode=true``: z re-inferred at every step from the current episode's
latest transitions, what a mid-episode change needs; no warm-up).

The script prints the suite's summary (ratios to the first method at its largest budget), one table per
held-out scenario of the return at each budget (mean over training seeds, with the seeds' min and max),
and the training table: environment steps, gradient steps and training wall-clock per method and budget
(seed means). Gradient steps: PEARL (SAC + encoder updates) and RL² (PPO minibatch steps) count them in
their ``progress.json``; GrBAL / ReBAL / PE-GrBAL / PE-ReBAL take exactly ``meta.first_updates + rounds *
meta.updates_per_iteration`` meta-updates; MB and PE refit with early stopping and record no count (``-``).
It writes ``sample_efficiency.png`` into the suite's folder: held-out return against environment steps
(log axis), one panel per held-out scenario, one line per method (mean over training seeds) with the
seeds' min-max band.

``--adopt METHOD:SEED=PATH`` (repeatable) takes a finished checkpoint trained elsewhere (a shipped one, or a
run on another machine) as that method's seed-SEED run: it is copied to the run folder as
``model_at_<budget>.pt`` at the largest of the method's budgets its environment steps reach, with the
steps and gradient steps of its metadata in ``budgets.json`` and the file it came from (the training
wall-clock of the run folder whose final ``model.pt`` it is; a shipped file's is unknown: ``-``); its
robot, training scenario, seed and preset family must match. An adopted run trains no further; a folder
that holds a training run, or another checkpoint at that budget, is refused.
METHOD is a trained method: ``--adopt PE-GrBAL:1=...`` with ``--methods PE-GrBAL-prior+gains`` plays the
adopted PE-GrBAL checkpoint with the gains only (PE-GrBAL itself need not be among ``--methods``).

Everything resumes: run the same command again after an interruption or with larger budgets. Environment
steps count every transition a method collected (random data, exploration, adaptation episodes); a budget
can be overshot by up to one collection round, so the tables print the actual count.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import yaml

from adaptive_mbrl.config import ConfigError, to_dict
from adaptive_mbrl.evaluation import LocalExecutor, SuiteConfig
from adaptive_mbrl.envs.scenarios import scenario_slug
from adaptive_mbrl.evaluation.suite import ControllerEntry, RobotBlock, validate_suite
from adaptive_mbrl.presets import load_preset
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.checkpoint import load_checkpoint
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.trainer import AnyPreset, load_training_preset, train
from adaptive_mbrl.training.meta_train import META_ADAPTERS

from adaptive_mbrl.evaluation.results import file_sha256

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import (SLOW_FINETUNING, check_test_scenarios, default_runs_dir, keyed_folder, planner_settings,
                     play_seeds_then_pool)

MODEL_BASED = {"MB": "mb", "GrBAL": "grbal", "ReBAL": "rebal", "PE": "pets", "PE-GrBAL": "pets_grbal",
               "PE-ReBAL": "pets_rebal"}
BASELINES = {"PEARL": "pearl", "RL2": "rl2"}


class PlayedAs(NamedTuple):
    """How a method without a training of its own plays another method's runs."""

    trained: str                      # the method whose runs (folders, checkpoints) it plays
    preset: str                       # the shipped preset the episodes play with ...
    overrides: tuple[str, ...] = ()   # ... changed by these run-time settings (its suite entries' set:)


RUN_AS = {"PE+gains": PlayedAs("PE", "pets_gains"), "PE+gains+DE": PlayedAs("PE", "pets_gains_de"),
          "PE-GrBAL-prior+gains": PlayedAs("PE-GrBAL", "pets_gains"),
          "PE-GrBAL-prior+gains+DE": PlayedAs("PE-GrBAL", "pets_gains_de"),
          "PE-GrBAL-prior+gains+DE-slow": PlayedAs("PE-GrBAL", "pets_gains_de", (SLOW_FINETUNING,))}
"""Methods without a training of their own: PE's or the meta-trained PE-GrBAL ensemble played with per-motor
gains estimated online, without and with online fine-tuning of the weights (``-slow``: at 3e-5 instead of
the preset's 1e-4) (``adaptation.py``'s names)."""
METHODS = [*MODEL_BASED, *RUN_AS, *BASELINES]
DEFAULT_METHODS = ["MB", "GrBAL", "ReBAL", "PEARL", "RL2"]
EVAL_MODES: dict[str, list[tuple[str, list[str]]]] = {
    "PEARL": [("PEARL", ["adapt_within_episode=false"]), ("PEARL-within", ["adapt_within_episode=true"])]}
"""The suite entries of a method's checkpoint, ``(label, set:)``; a method not listed has one, its own name."""
WARMUP_LABELS = {"PEARL"}
"""Evaluation modes that adapt between episodes: their entries get ``--pearl-warmup`` warm-up episodes."""
EPISODE_SEED = 10_000
"""Evaluation episode ``i`` uses environment seed ``EPISODE_SEED + i`` for every method (``--episode-seed``'s
default)."""
PLOT = "sample_efficiency.png"

Records = dict[tuple[str, int], dict[str, dict]]
"""``(method, seed) -> budgets.json`` of that run: budget (str) -> ``env_steps``, ``grad_steps`` (or None),
``wall_clock_s``, ``checkpoint``."""


def eval_modes(method: str) -> list[tuple[str, list[str]]]:
    """``(label, set:)`` of each suite entry of ``method``'s checkpoints."""
    return EVAL_MODES.get(method, [(method, [])])


def trained_as(method: str) -> str:
    """The method whose training run ``method`` plays (itself, unless it is one of :data:`RUN_AS`)."""
    return RUN_AS[method].trained if method in RUN_AS else method


def run_dir(robot: str, scenario: str, method: str, seed: int | str, tag: str = "",
            runs_dir: Path | None = None) -> Path:
    """``method``'s training run folder (``seed="{seed}"``: the suite's checkpoint pattern; a method of
    :data:`RUN_AS` shares the folder of the method it runs)."""
    root = default_runs_dir() if runs_dir is None else Path(runs_dir)
    slug = trained_as(method).lower().replace("-", "_")
    return root / f"sample_{robot}_{scenario_slug(scenario)}_{slug}{'_' + tag if tag else ''}_s{seed}"


def run_as_settings(args: argparse.Namespace, method: str) -> list[str]:
    """Run-time settings of a :data:`RUN_AS` method's entries: the planner settings of ``--set``, which the
    run it plays was trained (and its own entries run) with, since its preset is the shipped one, then the
    method's own overrides."""
    return [*planner_settings(args.overrides), *RUN_AS[method].overrides] if method in RUN_AS else []


def run_tag(args: argparse.Namespace, method: str) -> str:
    """The ``--tag`` suffix of ``method``'s run folder: on the runs whose training ``--set`` (the model-based
    methods) or ``--method-presets`` changes, so that PEARL and RL² keep their runs under a ``--set`` for the
    model-based methods; with neither option, on every method's."""
    if not (args.overrides or args.method_presets):
        return args.tag
    base = trained_as(method)
    changed = (base in MODEL_BASED and bool(args.overrides)) or base in args.method_presets
    return args.tag if changed else ""


def method_preset(method: str, iterations: int, overrides: list[str], preset_file: Path | None = None) -> AnyPreset:
    """``method``'s shipped training preset (or ``preset_file``; a method of :data:`RUN_AS`: the preset of
    the method it runs) with ``iterations`` collection rounds; ``overrides`` (``SECTION.KEY=VALUE``) apply to
    the model-based presets only."""
    method = trained_as(method)
    name = preset_file or {**MODEL_BASED, **BASELINES}[method]
    return load_training_preset(name, iterations, overrides if method in MODEL_BASED else [])


def check_method_preset(method: str, overrides: list[str], preset_file: Path | None) -> None:
    """Fail before anything trains if ``method``'s preset does not load with ``overrides`` or
    ``preset_file`` is of another family (a baseline file for a model-based method, PEARL for RL², ...)."""
    try:
        preset = method_preset(method, 0, overrides, preset_file)
    except (ConfigError, ValueError) as err:
        raise SystemExit(f"sample_efficiency.py: {method}'s preset: {err}") from None
    kind = getattr(preset, "kind", None)
    wanted = BASELINES.get(method)
    if kind != wanted:
        raise SystemExit(f"sample_efficiency.py: --method-presets {method}={preset_file}: a "
                         f"{kind or 'model-based'} preset, but {method} needs a {wanted or 'model-based'} one")


def _progress(folder: Path) -> dict | None:
    path = folder / "progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def gradient_steps(folder: Path, row: dict) -> int | None:
    """Gradient steps of the run in ``folder`` at ``row`` (its progress document or a history row): the
    trainer's own count (PEARL, RL²), else the meta-updates of a GrBAL / ReBAL schedule (``meta.first_updates
    + row["iteration"] * meta.updates_per_iteration``, from the run's ``config.yaml``); None for a fitted
    model (MB, PE: early-stopped epochs, not counted)."""
    if row.get("grad_steps") is not None:
        return int(row["grad_steps"])
    preset = yaml.safe_load((folder / "config.yaml").read_text())["preset"]
    if "iteration" in row and preset.get("adapter", {}).get("kind") in META_ADAPTERS:
        return int(preset["meta"]["first_updates"] + row["iteration"] * preset["meta"]["updates_per_iteration"])
    return None


def _complete_record(folder: Path, record: dict[str, dict]) -> dict[str, dict]:
    """Add ``grad_steps`` to budgets recorded before it was kept, from the progress history row with the
    same environment steps (None if there is none); point each ``checkpoint`` at ``folder``'s own
    ``model_at_<budget>.pt`` (the recorded path goes stale when a run folder is moved, e.g. to another
    ``--runs-dir``); give an adopted checkpoint the wall-clock and gradient steps of the run it came from
    (:func:`_source_run_cost`)."""
    history = (_progress(folder) or {}).get("history", [])
    for budget, entry in record.items():
        entry["checkpoint"] = str(folder / f"model_at_{budget}.pt")
        if "grad_steps" not in entry:
            row = next((r for r in history if r.get("env_steps") == entry["env_steps"]), None)
            entry["grad_steps"] = None if row is None else gradient_steps(folder, row)
        if "adopted_from" in entry and entry.get("wall_clock_s") is None:
            entry.update(_source_run_cost(Path(entry["adopted_from"]), entry))
    return record


def _source_run_cost(source: Path, entry: dict) -> dict:
    """``wall_clock_s`` and ``grad_steps`` of the training run that wrote the adopted checkpoint ``source``:
    read from its run folder's ``progress.json`` when ``source`` is that run's final ``model.pt`` at the
    adopted environment steps; empty for a file outside a run folder (a shipped checkpoint: its run's
    wall-clock is not known here)."""
    doc = _progress(source.parent) if source.name == "model.pt" else None
    if doc is None or doc.get("env_steps") != entry["env_steps"] or doc.get("wall_clock_s") is None:
        return {}
    cost = {"wall_clock_s": float(doc["wall_clock_s"])}
    if entry.get("grad_steps") is None and ("grad_steps" in doc or (source.parent / "config.yaml").is_file()):
        cost["grad_steps"] = gradient_steps(source.parent, doc)
    return cost


def _copy_checkpoint(source: Path, target: Path) -> None:
    """Copy the checkpoint ``source`` to ``target``, with its ``.yaml`` metadata twin where it has one (read
    by suite validation)."""
    shutil.copyfile(source, target)
    if source.with_suffix(".yaml").is_file():
        shutil.copyfile(source.with_suffix(".yaml"), target.with_suffix(".yaml"))


def reach_budgets(method: str, robot: str, scenario: str, seed: int, budgets: list[int], max_minutes: float,
                  folder: Path, make_preset: Callable[[int], AnyPreset]) -> dict[str, dict]:
    """Extend the run in ``folder`` (``make_preset(rounds)``: its preset) until each budget is reached (or
    the time limit); returns ``budgets.json``."""
    record_path = folder / "budgets.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    adopted = [entry["adopted_from"] for entry in record.values() if "adopted_from" in entry]
    if adopted:  # training here would start a new run beside a checkpoint trained elsewhere
        raise SystemExit(f"sample_efficiency.py: {folder} holds an adopted checkpoint ({adopted[0]}), which trains "
                         f"no further: give the same --adopt {method}:{seed}=..., or --eval-only, or another --runs-dir")
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
                return _complete_record(folder, record)
            iterations = max(_next_iterations(doc, budget), asked + 1)  # a trainer may write nothing for 0 rounds
            if asked >= 1 and iterations > asked and _progress(folder) is None:
                raise RuntimeError(f"{method}: training {asked} round(s) wrote no progress in {folder}")
            train(make_preset(iterations), RunSettings(robot, scenario, seed=seed), folder, resume=True,
                  progress=False)
            asked = iterations
        _copy_checkpoint(folder / "model.pt", folder / f"model_at_{budget}.pt")
        record[str(budget)] = {"env_steps": doc["env_steps"], "iteration": doc["iteration"],
                               "grad_steps": gradient_steps(folder, doc), "wall_clock_s": doc["wall_clock_s"],
                               "checkpoint": str(folder / f"model_at_{budget}.pt")}
        record_path.write_text(json.dumps(record, indent=1))
        print(f"{method} seed {seed}: {doc['env_steps']} steps (budget {budget}) in {doc['wall_clock_s'] / 60:.1f} min",
              flush=True)
    return _complete_record(folder, record)


def reached_budgets(folder: Path) -> dict[str, dict]:
    """``budgets.json`` of the run in ``folder`` as it is (empty if none)."""
    path = folder / "budgets.json"
    return _complete_record(folder, json.loads(path.read_text())) if path.exists() else {}


def adopt_checkpoint(method: str, seed: int, path: Path, robot: str, scenario: str, budgets: list[int],
                     folder: Path) -> dict[str, dict]:
    """Record the finished checkpoint ``path`` as ``method``'s seed-``seed`` run in ``folder`` (see the module
    docstring, ``--adopt``) at the largest of ``budgets`` its environment steps reach; returns the run's
    ``budgets.json``. Adopting the same file again changes nothing. Raises ValueError naming what does not
    match: the checkpoint's robot, training scenario, seed or preset family, steps below every budget, a
    folder that holds a training run or another checkpoint at that budget."""
    payload = load_checkpoint(path)
    meta, preset = payload.get("meta") or {}, payload.get("preset") or {}
    family = BASELINES.get(method)
    found = {"robot": payload.get("robot"), "meta.scenario": meta.get("scenario"), "meta.seed": meta.get("seed"),
             "preset family": preset.get("kind") or "model-based"}
    wanted = {"robot": robot, "meta.scenario": scenario, "meta.seed": seed, "preset family": family or "model-based"}
    if family is None and preset.get("name") != MODEL_BASED[method]:
        found["preset.name"], wanted["preset.name"] = preset.get("name"), MODEL_BASED[method]
    wrong = [f"{key} {found[key]!r} (needed: {wanted[key]!r})" for key in wanted if found[key] != wanted[key]]
    if wrong:
        raise ValueError(f"--adopt {method}:{seed}={path}: " + "; ".join(wrong))
    steps = meta.get("env_steps")
    reached = [b for b in budgets if isinstance(steps, int) and steps >= b]
    if not reached:
        raise ValueError(f"--adopt {method}:{seed}={path}: meta.env_steps {steps!r} reaches none of {method}'s "
                         f"budgets {budgets}")
    if _progress(folder) is not None:
        raise ValueError(f"--adopt {method}:{seed}={path}: {folder} holds a training run; adopt into another "
                         f"--runs-dir or --tag")
    budget = max(reached)
    record = reached_budgets(folder)
    target = folder / f"model_at_{budget}.pt"
    if str(budget) in record:
        if target.is_file() and file_sha256(target) == file_sha256(path):
            return record
        raise ValueError(f"--adopt {method}:{seed}={path}: {folder} already holds another checkpoint at budget "
                         f"{budget}")
    folder.mkdir(parents=True, exist_ok=True)
    _copy_checkpoint(path, target)
    record[str(budget)] = {"env_steps": steps, "iteration": meta.get("iteration"),
                           "grad_steps": meta.get("grad_steps"), "wall_clock_s": None,
                           "checkpoint": str(target), "adopted_from": str(path)}
    (folder / "budgets.json").write_text(json.dumps(record, indent=1))
    print(f"{method} seed {seed}: adopted {path} ({steps} steps) as budget {budget}", flush=True)
    return record


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


def method_budgets(args: argparse.Namespace, method: str) -> list[int]:
    """``method``'s budgets in environment steps, ascending (``--method-budgets``, else ``--budgets``)."""
    return sorted(args.method_budgets.get(method, args.budgets))


def adoption_budgets(args: argparse.Namespace, trained: str) -> list[int]:
    """The budgets an adopted checkpoint of the trained method ``trained`` may stand for, ascending: those of
    every method of ``--methods`` that plays its runs (itself, or a :data:`RUN_AS` method listed without it)."""
    return sorted({b for m in args.methods if trained_as(m) == trained for b in method_budgets(args, m)})


def _reached(records: Records, method: str, budget: int, seeds: list[int]) -> dict[int, dict]:
    """Seed -> ``budgets.json`` entry of the ``seeds`` whose ``method`` run reached ``budget``."""
    return {s: records[method, s][str(budget)] for s in seeds if str(budget) in records[method, s]}


def build_suite(args: argparse.Namespace, records: Records, seeds: list[int]) -> tuple[SuiteConfig, Path]:
    """The evaluation suite of every kept checkpoint of training seeds ``seeds`` (``<label>@<budget>``, one
    per evaluation mode; a seed whose run did not reach the budget is skipped) and its run folder."""
    entries, weights = [], {}
    for method in args.methods:
        for budget in method_budgets(args, method):
            reached = _reached(records, method, budget, seeds)
            if not reached:
                continue
            pattern = run_dir(args.robot, args.train_scenario, method, "{seed}", run_tag(args, method), args.runs_dir)
            for label, settings in eval_modes(method):
                warmup = args.pearl_warmup if label in WARMUP_LABELS else 0
                entries.append(ControllerEntry(f"{label}@{budget}", str(pattern / f"model_at_{budget}.pt"),
                                               preset=RUN_AS[method].preset if method in RUN_AS else None,
                                               optional=True, set=list(settings) + run_as_settings(args, method),
                                               warmup_episodes=warmup))
                weights.update({f"{label}@{budget} s{s}": file_sha256(e["checkpoint"]) for s, e in reached.items()})
    if not entries:
        raise SystemExit("sample_efficiency.py: no run reached any budget yet (train without --eval-only)")
    first = eval_modes(args.methods[0])[0][0]
    baseline = max((e.label for e in entries if e.label.startswith(f"{first}@")),
                   key=lambda label: int(label.split("@")[1]), default=entries[0].label)
    suite = SuiteConfig(name=f"sample_{args.robot}_{scenario_slug(args.train_scenario)}", seeds=list(seeds),
                        episodes=args.episodes, episode_steps=args.episode_steps, episode_seed=args.episode_seed,
                        baseline=baseline, robots=[RobotBlock(args.robot, list(args.test_scenarios), entries)],
                        description=f"held-out return per training budget, trained on {args.train_scenario}")
    validate_suite(suite, "sample_efficiency.py")
    tests = "+".join(scenario_slug(s) for s in args.test_scenarios)
    folder = keyed_folder(args.runs_dir, f"sample_eval_{args.robot}_{scenario_slug(args.train_scenario)}_"
                          f"{tests}{'_' + args.tag if args.tag else ''}",
                          {"suite": to_dict(suite), "weights": weights})
    guard_played_presets(folder, played_presets(args.methods))
    return suite, folder


PLAYED_PRESETS = "played_presets.json"


def played_presets(methods: list[str]) -> dict[str, dict]:
    """Name -> contents of the shipped presets that ``methods`` of :data:`RUN_AS` play their checkpoints with
    (the other methods play each checkpoint's own preset, which the checkpoint's bytes cover)."""
    names = sorted({RUN_AS[method].preset for method in methods if method in RUN_AS})
    return json.loads(json.dumps({name: to_dict(load_preset(name)) for name in names}))


def guard_played_presets(folder: Path, presets: dict[str, dict]) -> None:
    """Keep ``presets`` (:func:`played_presets`) in ``folder/played_presets.json`` and refuse to add episodes
    to a folder whose episodes were played with other contents of one of them: the folder's key covers
    the suite and the checkpoints' bytes, not the preset files (an edited ``pets_gains_de.yaml`` would
    otherwise resume into stale episodes)."""
    if not presets:
        return
    path = folder / PLAYED_PRESETS
    saved = json.loads(path.read_text()) if path.is_file() else {}
    changed = sorted(name for name in presets if name in saved and saved[name] != presets[name])
    if changed:
        raise SystemExit(f"sample_efficiency.py: preset(s) {', '.join(changed)} changed since the episodes in "
                         f"{folder} were played; give another --tag (or move that folder away) to play them again")
    if any(name not in saved for name in presets):
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**saved, **presets}, indent=1, sort_keys=True))


def evaluate(args: argparse.Namespace, records: Records) -> Path:
    """Play the held-out episodes of every kept checkpoint, seed by seed (:func:`play_seeds_then_pool`: a
    budget one seed reaches later, e.g. a second PEARL seed at 1M, replays only that seed's episodes);
    returns the folder of the suite of all ``args.seeds``."""
    executor = LocalExecutor(args.workers)
    suite, folder = build_suite(args, records, list(args.seeds))
    print(f"\n{args.robot}: trained on {args.train_scenario}, held-out {' '.join(args.test_scenarios)}, seeds "
          f"{args.seeds}, {args.episodes} episodes per checkpoint and scenario; evaluation in {folder}\n", flush=True)
    play_seeds_then_pool(suite, folder, list(args.seeds), lambda seeds: build_suite(args, records, seeds), executor,
                         has_episodes=lambda seed: any(_reached(records, m, b, [seed]) for m in args.methods
                                                       for b in method_budgets(args, m)))
    return folder


def return_curves(args: argparse.Namespace, records: Records, episodes: list[dict]) -> list[dict]:
    """One row per (held-out scenario, label, budget) evaluated: ``env_steps`` (mean over the seeds that
    reached the budget), the return as ``mean`` over those seeds of each seed's mean episode return, its
    ``low`` / ``high`` (the seeds' min / max) and ``seeds``."""
    per_seed: dict[tuple[str, str, int], list[float]] = {}
    for e in episodes:
        per_seed.setdefault((e["scenario"], e["label"], e["seed"]), []).append(e["return"])
    rows = []
    for scenario in args.test_scenarios:
        for method in args.methods:
            for label, _ in eval_modes(method):
                for budget in method_budgets(args, method):
                    reached = _reached(records, method, budget, args.seeds)
                    returns = [float(np.mean(per_seed[scenario, f"{label}@{budget}", s])) for s in reached
                               if (scenario, f"{label}@{budget}", s) in per_seed]
                    if returns:
                        rows.append({"scenario": scenario, "label": label, "budget": budget,
                                     "env_steps": float(np.mean([e["env_steps"] for e in reached.values()])),
                                     "mean": float(np.mean(returns)), "low": min(returns), "high": max(returns),
                                     "seeds": len(returns)})
    return rows


def print_return_tables(args: argparse.Namespace, rows: list[dict]) -> None:
    """Per held-out scenario: the return of each label at each budget (mean and min-max over training seeds)."""
    for scenario in args.test_scenarios:
        print(f"\nHeld-out {scenario}:\n")
        print("| method | budget (env steps) | env steps used | seeds | return (mean over seeds) | seeds' min | "
              "seeds' max |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in (r for r in rows if r["scenario"] == scenario):
            print(f"| {r['label']} | {r['budget']} | {r['env_steps']:.0f} | {r['seeds']} | {r['mean']:.1f} | "
                  f"{r['low']:.1f} | {r['high']:.1f} |")


def _seed_count(rows: list[dict]) -> str:
    """How many training seeds a plotted line averages: ``"1 seed"``, ``"3 seeds"``, or ``"1-3 seeds"`` when
    its budgets were reached by different numbers of seeds."""
    low, high = min(r["seeds"] for r in rows), max(r["seeds"] for r in rows)
    return f"{low} seed" if high == 1 else f"{high} seeds" if low == high else f"{low}-{high} seeds"


def plot_curves(rows: list[dict], scenarios: list[str], path: Path, title: str) -> Path:
    """``path`` (PNG): held-out return against environment steps (log x), one panel per scenario, one line
    per label (mean over training seeds; the legend gives their number) with the seeds' min-max band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for label in dict.fromkeys(r["label"] for r in rows):
            mine = sorted((r for r in rows if (r["scenario"], r["label"]) == (scenario, label)),
                          key=lambda r: r["env_steps"])
            if not mine:
                continue
            x = [r["env_steps"] for r in mine]
            line, = ax.plot(x, [r["mean"] for r in mine], marker="o", label=f"{label} ({_seed_count(mine)})")
            ax.fill_between(x, [r["low"] for r in mine], [r["high"] for r in mine], color=line.get_color(), alpha=0.2)
        ax.set_xscale("log")
        ax.set_title(scenario)
        ax.set_xlabel("environment steps of training")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("held-out return (mean over training seeds)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # the legend goes below the panels, off every curve
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def print_budget_table(args: argparse.Namespace, records: Records) -> None:
    """Per method and budget (seed means): the environment steps actually used, the gradient steps (``-``:
    not counted, see the module docstring) and the training wall-clock to reach it."""
    print("| method | budget (env steps) | env steps used | gradient steps | seeds reached | "
          "training wall-clock (min) |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in args.methods:
        for budget in method_budgets(args, method):
            reached = list(_reached(records, method, budget, args.seeds).values())
            if not reached:
                print(f"| {method} | {budget} | not reached | - | 0 / {len(args.seeds)} | - |")
                continue
            steps = int(np.mean([e["env_steps"] for e in reached]))
            grads = [e.get("grad_steps") for e in reached]
            grad = "-" if any(g is None for g in grads) else str(int(np.mean(grads)))
            wall = _mean_minutes([e.get("wall_clock_s") for e in reached])
            print(f"| {method} | {budget} | {steps} | {grad} | {len(reached)} / {len(args.seeds)} | {wall} |")


def _mean_minutes(walls: list[float | None]) -> str:
    """Mean training wall-clock in minutes over the seeds that know theirs (None: a shipped checkpoint adopted
    without its run), marked ``(k of n seeds)`` where some do not; ``-`` where none does."""
    known = [w for w in walls if w is not None]
    if not known:
        return "-"
    mean = f"{np.mean(known) / 60:.1f}"
    return mean if len(known) == len(walls) else f"{mean} ({len(known)} of {len(walls)} seeds)"


def parse_method_values(parser: argparse.ArgumentParser, flag: str, items: list[str], methods: list[str],
                        parse: Callable[[str], object]) -> dict[str, object]:
    """``METHOD=VALUE`` items of ``flag`` as method -> ``parse(VALUE)``; a parser error names the item and the
    allowed methods (those of ``--methods``), a repeated method or a value ``parse`` refuses (ValueError)."""
    values: dict[str, object] = {}
    for item in items:
        method, sep, text = item.partition("=")
        if not sep or method not in METHODS:
            parser.error(f"{flag} {item!r}: expected METHOD=VALUE with METHOD one of {', '.join(METHODS)}")
        if method not in methods:
            parser.error(f"{flag} {item!r}: {method} is not among --methods ({' '.join(methods)})")
        if method in values:
            parser.error(f"{flag}: {method} given twice")
        try:
            values[method] = parse(text)
        except ValueError as err:
            parser.error(f"{flag} {item!r}: {err}")
    return values


def _budget_list(text: str) -> list[int]:
    """``"50000,1000000"`` -> ``[50000, 1000000]`` (distinct integers >= 1)."""
    try:
        budgets = [int(b) for b in text.split(",")]
    except ValueError:
        raise ValueError("budgets must be comma-separated integers, e.g. RL2=50000,1000000,5000000") from None
    if min(budgets) < 1 or len(set(budgets)) != len(budgets):
        raise ValueError("budgets must be distinct and at least 1")
    return budgets


def _minutes(text: str) -> float:
    minutes = float(text)
    if not minutes > 0:
        raise ValueError("minutes must be positive")
    return minutes


def _preset_file(text: str) -> Path:
    path = Path(text)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise ValueError(f"{text!r} is no existing .yaml preset file")
    return path


def parse_adoptions(parser: argparse.ArgumentParser, items: list[str], methods: list[str],
                    seeds: list[int]) -> dict[tuple[str, int], Path]:
    """``METHOD:SEED=PATH`` items of ``--adopt`` as ``(method, seed) -> path``; a parser error names the item
    and what is allowed (a trained method of ``--methods`` or one whose runs a :data:`RUN_AS` method there
    plays, a seed of ``--seeds``, an existing ``.pt`` file, each (method, seed) once)."""
    adoptions: dict[tuple[str, int], Path] = {}
    trained = list(dict.fromkeys(trained_as(m) for m in methods))
    for item in items:
        key, sep, text = item.partition("=")
        method, colon, seed_text = key.partition(":")
        if not (sep and colon) or method not in trained or not seed_text.lstrip("-").isdigit():
            parser.error(f"--adopt {item!r}: expected METHOD:SEED=PATH with METHOD one of "
                         f"{', '.join(trained) or '(none: no trained method among --methods)'}")
        seed, path = int(seed_text), Path(text)
        if seed not in seeds:
            parser.error(f"--adopt {item!r}: seed {seed} is not among --seeds ({' '.join(map(str, seeds))})")
        if path.suffix != ".pt" or not path.is_file():
            parser.error(f"--adopt {item!r}: {text!r} is no existing .pt checkpoint")
        if (method, seed) in adoptions:
            parser.error(f"--adopt: {method}:{seed} given twice")
        adoptions[method, seed] = path
    return adoptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--train-scenario", default="crippled_joint_train")
    parser.add_argument("--test-scenarios", "--test-scenario", dest="test_scenarios", nargs="+",
                        default=["crippled_joint_test"], help="held-out scenarios (one table and plot panel each)")
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=METHODS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[50_000, 250_000, 1_000_000],
                        help="environment-step budgets of every method without --method-budgets")
    parser.add_argument("--method-budgets", nargs="+", default=[], metavar="METHOD=B1,B2,...",
                        help="a method's own budgets, e.g. RL2=50000,1000000,5000000")
    parser.add_argument("--method-presets", nargs="+", default=[], metavar="METHOD=PATH.yaml",
                        help="train a method with this preset file instead of its shipped one (needs --tag)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--episodes", type=int, default=3, help="held-out episodes per checkpoint and scenario")
    parser.add_argument("--episode-seed", type=int, default=EPISODE_SEED,
                        help="environment seed of the first held-out episode (episode i: this + i); another "
                             "value plays fresh episodes in a folder of their own")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="evaluation episode length in control steps (default: the robot's)")
    parser.add_argument("--max-minutes", type=float, default=120.0, help="training wall-clock limit per run")
    parser.add_argument("--method-max-minutes", nargs="+", default=[], metavar="METHOD=MINUTES",
                        help="a method's own training wall-clock limit per run, e.g. RL2=1440")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--workers", type=int, default=1, help="local processes for the evaluation episodes")
    parser.add_argument("--runs-dir", type=Path, default=default_runs_dir(),
                        help="where the run folders live (default: $ADAPTIVE_MBRL_RUNS or runs/)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="change every model-based preset (MB, GrBAL, ReBAL, PE, ...) the same way, e.g. "
                        "model.hidden_sizes=[64,64] (training.iterations is set by the budgets)")
    parser.add_argument("--tag", default="", help="run-folder suffix, required with --set and --method-presets")
    parser.add_argument("--pearl-warmup", type=int, default=1, metavar="N",
                        help="unscored episodes of the same task before each scored episode of PEARL's "
                             "between-episode entries (its original protocol; 0: z from the prior)")
    parser.add_argument("--adopt", nargs="+", default=[], metavar="METHOD:SEED=PATH",
                        help="take a finished checkpoint trained elsewhere (e.g. a shipped one) as the method's run "
                             "of that seed, at the largest budget its steps reach; it trains no further")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--eval-only", action="store_true",
                        help="no training: evaluate the budgets already reached (<runs-dir>/.../budgets.json)")
    args = parser.parse_args(argv)
    if (args.overrides or args.method_presets) and not args.tag:
        parser.error("--set and --method-presets need --tag NAME (the run folders get it as a suffix)")
    if any(o.startswith("training.iterations=") for o in args.overrides):
        parser.error("--set training.iterations: the budgets decide the rounds")
    if args.episodes < 1 or min(args.budgets) < 1:
        parser.error("--episodes and --budgets must be at least 1")
    if args.pearl_warmup < 0:
        parser.error(f"--pearl-warmup {args.pearl_warmup}: allowed: an integer >= 0")
    if args.episode_seed < 0:
        parser.error(f"--episode-seed {args.episode_seed}: allowed: an integer >= 0")
    args.methods = list(dict.fromkeys(args.methods))
    args.method_budgets = parse_method_values(parser, "--method-budgets", args.method_budgets, args.methods,
                                              _budget_list)
    args.method_presets = parse_method_values(parser, "--method-presets", args.method_presets, args.methods,
                                              _preset_file)
    args.method_max_minutes = parse_method_values(parser, "--method-max-minutes", args.method_max_minutes,
                                                  args.methods, _minutes)
    args.adopt = parse_adoptions(parser, args.adopt, args.methods, args.seeds)
    for method in args.method_presets:
        if method in RUN_AS:
            parser.error(f"--method-presets {method}: {method} plays the runs of {trained_as(method)} and has no "
                         f"training of its own; give {trained_as(method)}'s preset file")
    return args


def main() -> None:
    print(provenance_line(), flush=True)
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for method in args.methods:  # a bad setting or preset file fails before anything trains
        if (trained_as(method) in MODEL_BASED and args.overrides) or method in args.method_presets:
            check_method_preset(method, args.overrides, args.method_presets.get(method))
    if not args.train_only:
        check_test_scenarios(args.robot, args.test_scenarios, args.episode_steps)
    records: Records = {}
    for (method, seed), path in args.adopt.items():
        folder = run_dir(args.robot, args.train_scenario, method, seed, run_tag(args, method), args.runs_dir)
        try:
            adopt_checkpoint(method, seed, path, args.robot, args.train_scenario, adoption_budgets(args, method),
                             folder)
        except ValueError as err:
            raise SystemExit(f"sample_efficiency.py: {err}") from None
    for seed in args.seeds:
        for method in args.methods:
            folder = run_dir(args.robot, args.train_scenario, method, seed, run_tag(args, method), args.runs_dir)
            preset_file = args.method_presets.get(trained_as(method))
            adopted = (trained_as(method), seed) in args.adopt
            records[method, seed] = (reached_budgets(folder) if args.eval_only or adopted else reach_budgets(
                method, args.robot, args.train_scenario, seed, method_budgets(args, method),
                args.method_max_minutes.get(method, args.max_minutes), folder,
                lambda rounds, m=method, f=preset_file: method_preset(m, rounds, args.overrides, f)))
    if args.train_only:
        print()
        print_budget_table(args, records)
        return
    folder = evaluate(args, records)
    print((folder / "summary.md").read_text())
    rows = return_curves(args, records, json.loads((folder / "episodes.json").read_text()))
    print_return_tables(args, rows)
    plot = plot_curves(rows, list(args.test_scenarios), folder / PLOT,
                       f"{args.robot}: trained on {args.train_scenario} (training seeds asked: {args.seeds})")
    print(f"\nplot: {plot}\n")
    print_budget_table(args, records)


if __name__ == "__main__":
    main()
