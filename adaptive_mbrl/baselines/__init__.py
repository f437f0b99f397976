"""Model-free meta-RL baselines on the same tasks and harness as the model-based methods: PEARL (SAC v1 with
a probabilistic context encoder) and RL² (a GRU policy trained with PPO over trials).

::

    from adaptive_mbrl.baselines import load_baseline_preset, train_baseline, PolicyController
    ckpt = train_baseline(load_baseline_preset("pearl"), RunSettings("cartpole", "weak_motor_train"), "runs/p")
    ctrl = PolicyController.from_checkpoint(ckpt)      # reset / act / observe, like AdaptiveController
"""
from __future__ import annotations

from pathlib import Path

from adaptive_mbrl.baselines.controller import PEARLController, PolicyController, RL2Controller
from adaptive_mbrl.baselines.presets import (BaselinePreset, PEARLPreset, RL2Preset, is_baseline_preset,
                                             list_baseline_presets, load_baseline_preset)
from adaptive_mbrl.storage.runs import RunSettings


def train_baseline(preset: BaselinePreset, settings: RunSettings, run_dir: str | Path, resume: bool = False,
                   progress: bool | None = None, overwrite: bool = False) -> Path:
    """Train a PEARL or RL² preset; returns the checkpoint path (``resume`` / ``overwrite``: see
    :func:`~adaptive_mbrl.storage.runs.open_run_folder`)."""
    if isinstance(preset, PEARLPreset):
        from adaptive_mbrl.baselines.train_pearl import train_pearl
        return train_pearl(preset, settings, run_dir, resume=resume, progress=progress, overwrite=overwrite)
    from adaptive_mbrl.baselines.train_rl2 import train_rl2
    return train_rl2(preset, settings, run_dir, resume=resume, progress=progress, overwrite=overwrite)


__all__ = ["PEARLController", "PolicyController", "RL2Controller", "BaselinePreset", "PEARLPreset", "RL2Preset",
           "is_baseline_preset", "list_baseline_presets", "load_baseline_preset", "train_baseline"]
