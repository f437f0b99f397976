"""Run folders of every trainer (model fitting, meta-training, the baselines): open, resume, progress.

A run folder holds ``config.yaml`` (``{"preset": ..., "run": RunSettings}`` as plain data), the trainer's
files, and ``progress.json`` + ``metrics.csv``, written last after every round so that progress only
ever points at files already on disk. :func:`open_run_folder` is the one place that decides whether a
folder may be written: a fresh folder is started, an existing run is continued only with ``resume``
(and the same settings), replaced only with ``overwrite``, and refused otherwise, so a finished run is
never overwritten by accident.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from adaptive_mbrl.storage.atomic import atomic_write_text, atomic_write_yaml

CONFIG, PROGRESS = "config.yaml", "progress.json"


@dataclass
class RunSettings:
    """What to train on: robot, training scenario, backend, seed (>= 0), torch device."""

    robot: str
    scenario: str = "nominal"
    backend: str = "mujoco"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed: must be an integer >= 0 (it offsets the environments' reset seeds), "
                             f"got {self.seed!r}")


def run_config(preset: dict[str, Any], settings: RunSettings) -> dict[str, Any]:
    """The plain data written as ``config.yaml``: the preset (``to_dict`` of it) and the run settings."""
    return yaml.safe_load(yaml.safe_dump({"preset": preset, "run": asdict(settings)}, sort_keys=False))


def open_run_folder(run_dir: str | Path, config: dict[str, Any], *, resume: bool = False, overwrite: bool = False,
                    normalize_preset: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                    ) -> dict[str, Any] | None:
    """Start, resume or replace the run in ``run_dir`` and write its ``config.yaml``.

    Args:
        run_dir: the folder (created if missing).
        config: from :func:`run_config`.
        resume: continue the run in ``run_dir``; it must have the same config except
            ``preset.training.iterations`` (a run may be extended).
        overwrite: delete what an earlier run left in ``run_dir`` first.
        normalize_preset: maps a saved ``preset`` dict to its current normal form (e.g. through the preset
            dataclass, so fields added since the run started compare at their defaults).

    Returns:
        the saved ``progress.json`` document when resuming a run that finished a round, else None.

    Raises:
        FileExistsError: ``run_dir`` holds files and neither ``resume`` nor ``overwrite`` is given (the
            message names the ways on), or ``overwrite`` on a folder that is not a run folder.
        ValueError: both ``resume`` and ``overwrite``; a resume with other settings (the message names each
            differing field, and the ``--set`` that restores the run's preset values where all are preset fields).
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in the folder, "
                         "overwrite deletes it")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume (resume=True), "
                                  f"choose another --out folder, or replace it with --overwrite (overwrite=True)")
        _clear_run_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = None
    if resume and (run_dir / PROGRESS).exists():
        saved = yaml.safe_load((run_dir / CONFIG).read_text())
        differences = config_differences(_comparable(saved, normalize_preset), _comparable(config, normalize_preset))
        if differences:
            raise ValueError(f"{run_dir}: resume needs the same preset and run settings as the original run "
                             f"(only training.iterations may change; see {run_dir / CONFIG}); differing: "
                             + format_differences(differences) + _restoring_hint(differences))
        progress = read_progress(run_dir)
    atomic_write_yaml(run_dir / CONFIG, config)
    return progress


def _clear_run_folder(run_dir: Path) -> None:
    """Delete the contents of a run folder (only one with a ``config.yaml``: never an arbitrary folder)."""
    if not (run_dir / CONFIG).is_file():
        raise FileExistsError(f"{run_dir} holds files but no {CONFIG}, so it is not a run folder; "
                              "overwrite only replaces run folders: choose another --out folder")
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def config_differences(saved: Any, now: Any, prefix: str = "", into_lists: bool = False) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, current value)`` for every leaf where two nested config dicts differ
    (a key missing on one side has the value None there); [] when they are equal. Lists are leaves
    (``hidden_sizes: [200, 200]``) unless ``into_lists``, where two lists of the same length are compared
    item by item under their indices (``robots.0.scenarios``)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        found: list[tuple[str, Any, Any]] = []
        for key in list(saved) + [k for k in now if k not in saved]:
            found += config_differences(saved.get(key), now.get(key), f"{prefix}{key}.", into_lists)
        return found
    if into_lists and isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [d for i, (a, b) in enumerate(zip(saved, now)) for d in config_differences(a, b, f"{prefix}{i}.", True)]
    return [] if saved == now else [(prefix.rstrip("."), saved, now)]


def format_differences(differences: list[tuple[str, Any, Any]], limit: int | None = None,
                       value_chars: int | None = None) -> str:
    """:func:`config_differences` as text, ``key: run <saved>, now <current>`` joined by ``; ``; with ``limit``
    only the first ``limit`` and a count of the rest; with ``value_chars`` each value's repr cut to that
    many characters (ending in ``...``)."""
    def shown(value: Any) -> str:
        text = repr(value)
        return text if value_chars is None or len(text) <= value_chars else text[:value_chars - 3] + "..."
    named = [f"{key}: run {shown(was)}, now {shown(now)}" for key, was, now in differences[:limit]]
    if limit is not None and len(differences) > limit:
        named.append(f"and {len(differences) - limit} more")
    return "; ".join(named)


def _restoring_hint(differences: list[tuple[str, Any, Any]]) -> str:
    """The ``--set`` that gives the original run's preset values back (e.g. after a preset's default
    changed), where every difference is a preset field."""
    keys = [key for key, _, _ in differences]
    if not all(key.startswith("preset.") and key.count(".") == 2 for key in keys):
        return ""
    values = " ".join(f"{key.removeprefix('preset.')}={_as_set_value(was)}" for key, was, _ in differences)
    return f". To continue the run as it was started, add: --set {values}"


def _as_set_value(value: Any) -> str:
    """``value`` as the VALUE of ``--set SECTION.KEY=VALUE``, which is read back with ``yaml.safe_load``
    (one-line YAML: ``false``, ``1.0e-05``, ``[200, 200]``)."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()


def _comparable(config: dict[str, Any], normalize_preset: Callable[[dict], dict] | None) -> dict[str, Any]:
    """The config as compared on resume: preset normalised, minus ``training.iterations`` and the preset's
    free-text ``description`` (a reworded description, e.g. after a default changed, changes no setting; the
    setting itself is compared)."""
    config = yaml.safe_load(yaml.safe_dump(config))
    preset = normalize_preset(config["preset"]) if normalize_preset else config["preset"]
    preset = {k: v for k, v in preset.items() if k != "description"}
    preset = {**preset, "training": {k: v for k, v in preset.get("training", {}).items() if k != "iterations"}}
    return {**config, "preset": preset}


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_progress(run_dir: str | Path, progress: dict[str, Any]) -> None:
    """``progress.json`` (strict JSON: non-finite numbers as ``null``) and ``metrics.csv`` (one row per
    entry of ``progress["history"]``; its columns are every key any row has, in order of appearance, so a run
    resumed by a newer version that records more per round keeps one table, older rows left blank),
    atomically."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / PROGRESS, json.dumps(_finite(progress), indent=1, allow_nan=False))
    rows = progress["history"]
    if rows:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(run_dir / "metrics.csv", text.getvalue())


ROUND_PHASES = ("collect_s", "fit_s", "update_s")
"""History keys of a round's wall-clock split (s): collection, then the model fit or the meta-updates."""


def phase_seconds(round_start: float, collected: float, done: float, second: str = "fit_s") -> dict[str, float]:
    """A round's wall-clock split (``time.perf_counter`` stamps, s): ``collect_s`` (environment steps and the
    planning that chose their actions) and ``second`` (``fit_s``: the model's fit, or ``update_s``: the
    meta-updates), unrounded so that they add up to the round's share of ``wall_clock_s``."""
    if second not in ROUND_PHASES[1:]:
        raise ValueError(f"second: {second!r}; allowed: {', '.join(ROUND_PHASES[1:])}")
    return {"collect_s": collected - round_start, second: done - collected}


def round_line(progress: dict[str, Any], last_round: int | None = None) -> str:
    """One line on the latest round of ``progress`` (its last ``history`` row): round, environment steps,
    wall-clock, the row's returns and losses, and its split into phases (:data:`ROUND_PHASES`) when it has
    one, e.g. ``round 3, 20000 env steps, 4.1 min, mean_return 812.3, val_loss 0.0123, round: collect 150 s
    + fit 52 s``. With ``last_round`` (the run's final round index) the round reads ``3/39`` and the line
    ends with the time left (:func:`seconds_left`) once it can be estimated, as the suites' episode lines
    do, e.g. ``, ETA 2 h 30 min``."""
    row = progress["history"][-1] if progress.get("history") else {}
    iteration = progress.get("iteration", row.get("iteration", 0))
    parts = [f"round {iteration}" + (f"/{last_round}" if last_round is not None else ""),
             f"{progress.get('env_steps', 0)} env steps", f"{float(progress.get('wall_clock_s', 0.0)) / 60:.1f} min"]
    for key, value in row.items():
        if ("return" in key or "loss" in key) and isinstance(value, (int, float)):
            parts.append(f"{key} {value:.4g}")
    phases = [f"{key[:-2]} {row[key]:.0f} s" for key in ROUND_PHASES if isinstance(row.get(key), (int, float))]
    if phases:
        parts.append("round: " + " + ".join(phases))
    left = None if last_round is None else seconds_left(progress, last_round)
    if left is not None:
        parts.append(f"ETA {format_duration(left)}")
    return ", ".join(parts)


def seconds_left(progress: dict[str, Any], last_round: int, recent: int = 3) -> float | None:
    """Seconds until round ``last_round``: the rounds still to run times the mean wall-clock of the last
    ``recent`` rounds (consecutive ``history`` rows' ``wall_clock_s``, s; the first round, which includes
    the initial random data and its longer fit, is never among them). None until two rounds have run."""
    history = [row for row in progress.get("history", []) if isinstance(row.get("wall_clock_s"), (int, float))]
    if len(history) < 2:
        return None
    stamps = [float(row["wall_clock_s"]) for row in history[-(recent + 1):]]
    per_round = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return max(last_round - int(progress.get("iteration", history[-1].get("iteration", 0))), 0) * per_round


def format_duration(seconds: float) -> str:
    """``45 s``, ``1 min 10 s``, ``2 h 5 min`` (rounded to whole seconds / minutes)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def report_round(progress: dict[str, Any], show: bool | None, last_round: int | None = None) -> None:
    """Print :func:`round_line` when progress is automatic (``show`` None) and stdout is not a terminal
    (a log file, a pipe, CI), where progress bars stay silent; a terminal has the bars instead."""
    if show is None and not sys.stdout.isatty():
        print(round_line(progress, last_round), flush=True)


def read_progress(run_dir: str | Path) -> dict[str, Any]:
    """The ``progress.json`` of a run folder (``null`` numbers come back as None)."""
    return json.loads((Path(run_dir) / PROGRESS).read_text())
