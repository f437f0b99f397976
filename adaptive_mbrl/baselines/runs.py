"""Run folders of the baselines, laid out like the model-based ones.

``config.yaml`` (preset + run settings), ``model.pt`` (+ ``model.yaml``; the latest weights, written by
:func:`~adaptive_mbrl.training.checkpoint.save_checkpoint`), ``trainer_state.pt`` (optimizers, RNG
states, replay data: what resuming needs), ``progress.json`` and ``metrics.csv``. Every file is written
atomically after every iteration, progress last, so progress only ever points at files already on disk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from adaptive_mbrl.baselines.presets import BaselinePreset, baseline_from_dict
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.training.checkpoint import atomic_write, atomic_write_yaml
from adaptive_mbrl.training.train_model import write_progress  # noqa: F401  (re-exported for the baselines)


def run_config(preset: BaselinePreset, settings: Any) -> dict[str, Any]:
    """Plain-data config of a run (preset and :class:`~adaptive_mbrl.training.train_model.RunSettings`)."""
    return yaml.safe_load(yaml.safe_dump({"preset": to_dict(preset), "run": to_dict(settings)}))


def _without_iterations(config: dict[str, Any]) -> dict[str, Any]:
    preset = to_dict(baseline_from_dict(config["preset"], source="config.yaml", path="preset"))
    preset["training"] = {k: v for k, v in preset["training"].items() if k != "iterations"}
    return {**config, "preset": preset}


def open_run(run_dir: Path, config: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """Create ``run_dir`` and write ``config.yaml``; with ``resume``, return the saved progress document
    (None if the run never finished an iteration). A resumed run must have the same config, except
    ``training.iterations`` (a run may be extended)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = None
    progress_file = run_dir / "progress.json"
    if resume and progress_file.exists():
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        if _without_iterations(saved) != _without_iterations(config):
            raise ValueError(f"{run_dir}: resume needs the same preset and run settings as the original run "
                             f"(only training.iterations may change; see {run_dir / 'config.yaml'})")
        progress = json.loads(progress_file.read_text())
    atomic_write_yaml(run_dir / "config.yaml", config)
    return progress


def save_trainer_state(run_dir: Path, state: dict[str, Any]) -> None:
    """``trainer_state.pt`` atomically (tensors, numbers, strings and nested dicts / lists only)."""
    atomic_write(run_dir / "trainer_state.pt", lambda tmp: torch.save(state, tmp))


def load_trainer_state(run_dir: Path, device: torch.device | str | None = None) -> dict[str, Any]:
    return torch.load(run_dir / "trainer_state.pt", map_location=device or "cpu", weights_only=True)
