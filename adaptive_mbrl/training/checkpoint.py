"""Checkpoints: the model's ``state_dict`` plus the config that built it, written atomically.

One ``.pt`` file holds ``{"format", "robot", "actuation", "obs_dim", "action_dim", "preset" (plain data),
"model_state", "meta"}`` and, for adapters with learned parts (Meta-SGD rates, ReBAL's encoder), an
``"adapter_state"``; a ``.yaml`` twin next to it shows the config to people. Writes go to a
temporary file that replaces the old one in one step, so a crash never leaves a half-written checkpoint.
Loading uses ``torch.load(weights_only=True)``. ``actuation`` records what the actions meant when the model
was trained (the robot's ``actuation.mode``: torques or PD joint targets); :func:`check_actuation` refuses
a checkpoint whose robot file has since changed it (files written before the field existed were torque).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

FORMAT = "adaptive_mbrl/checkpoint-v1"


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML (keys in their given order) to ``path`` atomically."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


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


def check_actuation(payload: dict[str, Any], path: str | Path) -> None:
    """Raise ValueError if the checkpoint's robot now maps actions to torques differently than in training.

    A model trained on torque actions predicts nonsense when the same numbers become PD joint targets (and
    vice versa), with the same observation and action sizes, so nothing else would catch it.
    """
    from adaptive_mbrl.envs.robot_spec import load_robot
    robot = payload["robot"]
    trained, now = payload.get("actuation", "torque"), load_robot(robot).actuation.mode
    if trained != now:
        raise ValueError(f"{path}: trained with actuation {trained!r}, but robots/{robot}/robot.yaml now has "
                         f"actuation.mode {now!r}; retrain the model (or restore the robot file)")
