"""Baseline presets in the baselines package: list, load and recognise the PEARL / RL² presets.

The types (:class:`PEARLPreset`, :class:`RL2Preset`, ...) live in :mod:`adaptive_mbrl.baseline_presets` and
the file reading (names, ``base:`` inheritance) in :mod:`adaptive_mbrl.preset_files`, so that
:func:`adaptive_mbrl.presets.load_preset` loads them too without importing this package; they are
re-exported here for the package's modules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from adaptive_mbrl.baseline_presets import (KINDS, BaselinePreset, PEARLPreset, PEARLTraining, RL2Preset,  # noqa: F401
                                            RL2Training, SACConfig, baseline_from_dict)
from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.preset_files import BASELINES, group_dirs, preset_path, read_preset_data, shipped_presets


RUN_TIME_FIELDS: dict[str, dict[str, type]] = {"pearl": {"adapt_within_episode": bool}, "rl2": {}}
"""What a trained baseline may change at run time (a suite entry's ``set:``, ``load_controller(overrides=)``),
by preset ``kind``: PEARL's adaptation mode only (its network and training settings come from the checkpoint);
RL² nothing."""


def baseline_run_options(kind: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Controller options from run-time settings ``KEY=VALUE`` of a ``kind`` (``pearl`` / ``rl2``) policy,
    e.g. ``["adapt_within_episode=false"]`` -> ``{"adapt_within_episode": False}`` (values parsed as YAML).

    Raises:
        ConfigError: (source ``--set``, the key as field) a setting without ``=``, a key this kind cannot
            change at run time (the message lists the allowed ``KEY=VALUE`` forms), a value of the wrong
            type, or a key given twice.
    """
    allowed = RUN_TIME_FIELDS[kind]
    forms = ", ".join(f"{k}=true|false" if t is bool else f"{k}=<{t.__name__}>" for k, t in allowed.items())
    options: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = (part.strip() for part in item.partition("="))
        if key not in allowed:
            can = f"can change only {forms}" if forms else "has no settings to change"
            raise ConfigError("--set", key or item, f"a trained {kind} policy {can} at run time (adapter.* / "
                              f"planner.* settings apply to model-based checkpoints only); allowed: {forms or 'none'}")
        value = yaml.safe_load(text) if sep else None
        if not sep or type(value) is not allowed[key]:
            raise ConfigError("--set", key, f"expected {forms}, got {item!r}")
        if key in options:
            raise ConfigError("--set", key, f"given twice in {list(overrides)}")
        options[key] = value
    return options


def baselines_dir() -> Path:
    """Folder of the shipped baseline presets."""
    return group_dirs()[BASELINES]


def list_baseline_presets() -> list[str]:
    """Names of the shipped baseline presets."""
    return list(shipped_presets(BASELINES))


def load_baseline_preset(preset: str | Path) -> BaselinePreset:
    """A shipped baseline preset by name (``pearl``, ``rl2``, ...) or a preset YAML file by path (which may
    inherit from another with ``base:``)."""
    if Path(preset).suffix not in (".yaml", ".yml") and str(preset) not in list_baseline_presets():
        raise ValueError(f"unknown baseline preset {str(preset)!r}; allowed: {', '.join(list_baseline_presets())} "
                         "or a .yaml path")
    path = preset_path(preset)
    return baseline_from_dict(read_preset_data(path), source=str(path))


def is_baseline_preset(preset: str | Path) -> bool:
    """Whether ``preset`` names a shipped baseline preset or a YAML file with a baseline ``kind``."""
    if Path(preset).suffix not in (".yaml", ".yml"):
        return str(preset) in list_baseline_presets()
    try:
        data = read_preset_data(preset)
    except ConfigError:
        return False
    return data.get("kind") in KINDS
