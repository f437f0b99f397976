"""Baseline presets in the baselines package: list, load and recognise the PEARL / RL² presets.

The types (:class:`PEARLPreset`, :class:`RL2Preset`, ...) live in :mod:`adaptive_mbrl.baseline_presets` and
the file reading (names, ``base:`` inheritance) in :mod:`adaptive_mbrl.preset_files`, so that
:func:`adaptive_mbrl.presets.load_preset` loads them too without importing this package; they are
re-exported here for the package's modules.
"""
from __future__ import annotations

from pathlib import Path

from adaptive_mbrl.baseline_presets import (KINDS, BaselinePreset, PEARLPreset, PEARLTraining, RL2Preset,  # noqa: F401
                                            RL2Training, SACConfig, baseline_from_dict)
from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.preset_files import BASELINES, group_dirs, preset_path, read_preset_data, shipped_presets


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
