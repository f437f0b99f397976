"""Checkpoints: the model's ``state_dict`` plus the config that built it, written atomically.

One ``.pt`` file holds ``{"format", "robot", "actuation", "obs_dim", "action_dim", "preset" (plain data),
"model_state", "meta"}`` and, for adapters with learned parts (Meta-SGD rates, ReBAL's encoder), an
``"adapter_state"``; a ``.yaml`` twin next to it shows the config to people. Writes are atomic
(:mod:`adaptive_mbrl.storage.atomic`), so a crash never leaves a half-written checkpoint. Loading uses
``torch.load(weights_only=True)``. ``actuation`` records what the actions meant when the model was trained
(the robot's ``actuation.mode``: torques or PD joint targets); :func:`check_actuation` refuses a checkpoint
whose robot now means something else (files written before the field existed were torque).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adaptive_mbrl.storage.atomic import atomic_write, atomic_write_yaml

FORMAT = "adaptive_mbrl/checkpoint-v1"


def save_checkpoint(path: str | Path, *, robot: str, obs_dim: int, action_dim: int, preset: dict[str, Any],
                    model_state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None,
                    adapter_state: dict[str, torch.Tensor] | None = None, actuation: str = "torque") -> Path:
    """Write a checkpoint (and its human-readable ``.yaml`` twin) atomically; returns ``path``.

    ``adapter_state`` (optional): the adapter's learned parts (``Adapter.state_dict()``).
    ``actuation``: the robot's ``actuation.mode`` during training (``torque`` or ``pd_target``).
    """
    payload = {"format": FORMAT, "robot": robot, "actuation": actuation, "obs_dim": obs_dim, "action_dim": action_dim,
               "preset": preset, "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
               "meta": meta or {}}
    if adapter_state:
        payload["adapter_state"] = {k: v.detach().cpu() for k, v in adapter_state.items()}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    summary = {k: payload[k] for k in ("format", "robot", "actuation", "obs_dim", "action_dim", "preset", "meta")}
    atomic_write_yaml(Path(path).with_suffix(".yaml"), summary)
    return Path(path)


def load_checkpoint(path: str | Path, device: torch.device | str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to ``device``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or objects weights_only refuses
        raise ValueError(f"{path}: not an adaptive_mbrl checkpoint (torch.load failed: "
                         f"{type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an adaptive_mbrl checkpoint (expected format {FORMAT!r})")
    return payload


def check_actuation(payload: dict[str, Any], path: str | Path, actuation_now: str) -> None:
    """Raise ValueError if the checkpoint was trained with another actuation than the robot has now.

    A model trained on torque actions predicts nonsense when the same numbers become PD joint targets (and
    vice versa), with the same observation and action sizes, so nothing else would catch it.

    Args:
        payload: from :func:`load_checkpoint`.
        path: the checkpoint (for the message).
        actuation_now: the robot file's ``actuation.mode`` today (``load_robot(payload["robot"])``).
    """
    robot, trained = payload["robot"], payload.get("actuation", "torque")
    if trained != actuation_now:
        raise ValueError(f"{path}: trained with actuation {trained!r}, but robots/{robot}/robot.yaml now has "
                         f"actuation.mode {actuation_now!r}; retrain the model (or restore the robot file)")
