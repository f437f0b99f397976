"""The one entry point for training any preset: dynamics-model fitting (MB / MB+DE presets), meta-training
(GrBAL / ReBAL presets) or a model-free baseline (PEARL / RL²).

::

    from adaptive_mbrl.trainer import load_training_preset, train
    from adaptive_mbrl.storage.runs import RunSettings
    preset = load_training_preset("grbal", overrides=["training.iterations=3"])
    checkpoint = train(preset, RunSettings("half_cheetah", "crippled_joint_train"), "runs/grbal")

Every trainer opens its run folder through :func:`~adaptive_mbrl.storage.runs.open_run_folder`, so all of
them refuse to write into an earlier run unless told to ``resume`` it or ``overwrite`` it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from adaptive_mbrl.baselines import BaselinePreset, is_baseline_preset, load_baseline_preset, train_baseline
from adaptive_mbrl.presets import ControllerPreset, load_preset, with_overrides
from adaptive_mbrl.storage.runs import RunSettings
from adaptive_mbrl.training.meta_train import META_ADAPTERS, meta_train
from adaptive_mbrl.training.train_model import train_model

AnyPreset = Union[ControllerPreset, BaselinePreset]


def load_training_preset(name: str | Path, iterations: int | None = None,
                         overrides: list[str] | tuple[str, ...] = ()) -> AnyPreset:
    """A model-based preset (``controllers/<name>.yaml``) or a baseline (``controllers/baselines/``) by name
    or path, with ``training.iterations`` set to ``iterations`` (if given) and ``SECTION.KEY=VALUE``
    ``overrides`` applied (model-based presets only: a baseline refuses them)."""
    if is_baseline_preset(str(name)):
        if overrides:
            raise ValueError(f"settings {', '.join(overrides)} (--set, --random-steps, --steps-per-iteration, "
                             f"--parallel-envs) apply to model-based presets (mb, grbal, rebal, ...), not to the "
                             f"baseline {str(name)!r}; edit a copy of the baseline's YAML instead")
        preset = load_baseline_preset(name)
        if iterations is not None:
            preset.training.iterations = iterations
        return preset
    rounds = [f"training.iterations={iterations}"] if iterations is not None else []
    return with_overrides(load_preset(name), rounds + list(overrides))  # validated like the YAML


def train(preset: AnyPreset, settings: RunSettings, run_dir: str | Path, *, resume: bool = False,
          overwrite: bool = False, progress: bool | None = None) -> Path:
    """Train ``preset`` on ``settings.robot`` / ``settings.scenario`` in ``run_dir``; returns the checkpoint.

    Args:
        preset: a :class:`ControllerPreset` (fitted, or meta-trained when its adapter is grbal / rebal) or
            a baseline preset (PEARL / RL²).
        settings: robot, training scenario, backend, seed, device.
        run_dir: the run folder.
        resume: continue the run in ``run_dir`` (a fresh start if it never finished a round).
        overwrite: delete an earlier run in ``run_dir`` first. Without ``resume`` or ``overwrite`` a
            folder that holds files is refused (FileExistsError).
        progress: show progress bars (default: when attached to a terminal).
    """
    if isinstance(preset, ControllerPreset):
        trainer = meta_train if preset.adapter.kind in META_ADAPTERS else train_model
        return trainer(preset, settings, run_dir, resume=resume, progress=progress, overwrite=overwrite)
    return train_baseline(preset, settings, run_dir, resume=resume, progress=progress, overwrite=overwrite)
