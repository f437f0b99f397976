"""A suite's controller entries checked against their checkpoints, before anything runs.

:func:`validate_entries` (called by :func:`~adaptive_mbrl.evaluation.suite.load_suite`) refuses, naming the
suite file and the field:

- a ``baseline`` that is none of the controller labels (the summary's ratio column divides by it);
- a checkpoint trained on another robot than its block's (it would fail at the first step with an
  observation-size mismatch, after the other controllers' episodes had run);
- ``set`` settings that do not apply to the entry's preset (the ``--set`` error messages); on a model-free
  baseline's checkpoint only PEARL's ``adapt_within_episode=true|false`` applies;
- ``warmup_episodes`` > 0 on a model-based checkpoint: its controller's state is the adapter's window of the
  current episode and ``reset()`` restores the prior model, so earlier episodes cannot reach the scored one
  (only PEARL / RL² keep a task's context across episodes, ``reset(new_task=False)``).

Only the checkpoints' metadata is read: the ``.yaml`` twin that :func:`~adaptive_mbrl.storage.checkpoint.
save_checkpoint` writes next to the ``.pt``, or the ``.pt`` itself (``weights_only``) where there is none.
Missing checkpoints are left to :func:`~adaptive_mbrl.evaluation.suite.expand_jobs` (optional ones are
skipped there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adaptive_mbrl.config import ConfigError, from_dict
from adaptive_mbrl.evaluation.suite import ControllerEntry, SuiteConfig, resolve_checkpoint

BASELINE_KINDS = ("pearl", "rl2")


def checkpoint_summary(path: Path) -> dict[str, Any]:
    """``robot``, ``preset`` (plain data), ... of the checkpoint ``path`` (an existing file), without its
    tensors where the ``.yaml`` twin exists."""
    twin = path.with_suffix(".yaml")
    if twin.is_file():
        try:
            summary = yaml.safe_load(twin.read_text())
        except yaml.YAMLError:
            summary = None
        if isinstance(summary, dict) and {"robot", "preset"} <= set(summary):
            return summary
    from adaptive_mbrl.storage.checkpoint import load_checkpoint
    return load_checkpoint(path)


def add_run_overrides(config: SuiteConfig, overrides: list[str]) -> None:
    """Append ``overrides`` (``eval --set``) to the ``set`` of every model-based controller of ``config``
    (in place; a baseline's checkpoint, PEARL or RL², has no adapter or planner to change)."""
    for block in config.robots:
        for entry in block.controllers:
            if not _is_baseline(_summaries(entry, config.seeds)):
                entry.set = [*entry.set, *overrides]


def validate_entries(config: SuiteConfig, source: str) -> None:
    """Raise ConfigError (naming ``source`` and the field) for a bad baseline label, a checkpoint of another
    robot, or ``set`` settings that do not apply (see the module docstring)."""
    labels = [entry.label for block in config.robots for entry in block.controllers]
    if config.baseline not in labels:
        raise ConfigError(source, "baseline", f"{config.baseline!r} is not a controller label of this suite; "
                          f"allowed: {', '.join(dict.fromkeys(labels))}")
    for i, block in enumerate(config.robots):
        for j, entry in enumerate(block.controllers):
            where = f"robots[{i}].controllers[{j}]"
            summaries = _summaries(entry, config.seeds)
            for path, summary in summaries.items():
                if summary["robot"] != block.robot:
                    raise ConfigError(source, f"{where}.checkpoint",
                                      f"{entry.label!r}: checkpoint {str(path)!r} was trained on robot "
                                      f"{summary['robot']!r}, but this block's robot is {block.robot!r}; use a "
                                      f"{block.robot} checkpoint or move the controller to a {summary['robot']} block")
            if entry.set:
                _check_set(entry, summaries, source, f"{where}.set")
            if entry.warmup_episodes and summaries and not _is_baseline(summaries):
                raise ConfigError(source, f"{where}.warmup_episodes",
                                  f"{entry.label!r} is a model-based controller: warm-up episodes apply only to "
                                  "PEARL / RL² checkpoints, which keep a task's context across episodes (a "
                                  "model-based controller starts every episode from its prior model); allowed: 0")


def _summaries(entry: ControllerEntry, seeds: list[int]) -> dict[Path, dict[str, Any]]:
    """The metadata of each existing checkpoint of ``entry`` (one per seed; fewer with no ``{seed}``)."""
    paths = dict.fromkeys(resolve_checkpoint(entry.checkpoint, seed) for seed in seeds)
    return {path: checkpoint_summary(path) for path in paths if path.is_file()}


def _is_baseline(summaries: dict[Path, dict[str, Any]]) -> bool:
    return any(s["preset"].get("kind") in BASELINE_KINDS for s in summaries.values())


def _check_set(entry: ControllerEntry, summaries: dict[Path, dict[str, Any]], source: str, field: str) -> None:
    """Apply ``entry.set`` to the preset the entry runs with (its ``preset``, else each checkpoint's trained
    one); a ConfigError of :func:`~adaptive_mbrl.presets.with_run_overrides` is re-raised under ``field``."""
    from adaptive_mbrl.presets import ControllerPreset, load_preset, with_run_overrides

    if _is_baseline(summaries):
        from adaptive_mbrl.baselines.presets import baseline_run_options
        for kind in dict.fromkeys(k for s in summaries.values() if (k := s["preset"].get("kind")) in BASELINE_KINDS):
            try:
                baseline_run_options(kind, entry.set)
            except ConfigError as err:
                raise ConfigError(source, field, f"{entry.label!r} is a model-free baseline (PEARL / RL²): "
                                  f"{err.field}: {err.problem}") from None
        return
    if entry.preset is not None:
        bases = [load_preset(entry.preset)]
    else:
        bases = [from_dict(ControllerPreset, s["preset"], source=str(path), path="preset")
                 for path, s in summaries.items()]
    for base in bases:
        try:
            with_run_overrides(base, entry.set)
        except ConfigError as err:
            raise ConfigError(source, field, f"{entry.label!r}: {err.field}: {err.problem}") from None
