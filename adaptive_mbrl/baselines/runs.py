"""Run folders of the baselines, laid out like the model-based ones.

``config.yaml`` (preset + run settings), ``model.pt`` (+ ``model.yaml``; the latest weights, written by
:func:`~adaptive_mbrl.storage.checkpoint.save_checkpoint`), ``trainer_state.pt`` (optimizers, RNG
states, replay data: what resuming needs), ``progress.json`` and ``metrics.csv``. Every file is written
atomically after every iteration, progress last, so progress only ever points at files already on disk.
Opening, resuming and refusing a folder is :func:`~adaptive_mbrl.storage.runs.open_run_folder`'s job.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adaptive_mbrl.baselines.presets import BaselinePreset, baseline_from_dict
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.storage.atomic import atomic_write
from adaptive_mbrl.storage.runs import RunSettings, open_run_folder, run_config


def open_run(run_dir: Path, preset: BaselinePreset, settings: RunSettings, resume: bool,
             overwrite: bool = False) -> dict[str, Any] | None:
    """Start, resume or replace the baseline run in ``run_dir``; returns the saved progress document when
    resuming (None for a fresh run). See :func:`~adaptive_mbrl.storage.runs.open_run_folder`."""
    return open_run_folder(run_dir, run_config(to_dict(preset), settings), resume=resume, overwrite=overwrite,
                           normalize_preset=_normal_preset)


def _normal_preset(data: dict[str, Any]) -> dict[str, Any]:
    return to_dict(baseline_from_dict(data, source="config.yaml", path="preset"))


def save_trainer_state(run_dir: Path, state: dict[str, Any]) -> None:
    """``trainer_state.pt`` atomically (tensors, numbers, strings and nested dicts / lists only)."""
    atomic_write(run_dir / "trainer_state.pt", lambda tmp: torch.save(state, tmp))


def load_trainer_state(run_dir: Path, device: torch.device | str | None = None) -> dict[str, Any]:
    return torch.load(run_dir / "trainer_state.pt", map_location=device or "cpu", weights_only=True)
