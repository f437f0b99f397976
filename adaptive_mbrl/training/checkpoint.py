"""Checkpoints: the model's ``state_dict`` plus the config that built it, written atomically.

One ``.pt`` file holds ``{"format", "robot", "obs_dim", "action_dim", "preset" (plain data),
"model_state", "meta"}`` and, for adapters with learned parts (Meta-SGD rates, ReBAL's encoder), an
``"adapter_state"``; a ``.yaml`` twin next to it shows the config to people. Writes go to a
temporary file that replaces the old one in one step, so a crash never leaves a half-written checkpoint.
Loading uses ``torch.load(weights_only=True)``.
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


def save_checkpoint(path: str | Path, *, robot: str, obs_dim: int, action_dim: int, preset: dict[str, Any],
                    model_state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None,
                    adapter_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint (and its human-readable ``.yaml`` twin) atomically; returns ``path``.

    ``adapter_state`` (optional): the adapter's learned parts (``Adapter.state_dict()``).
    """
    payload = {"format": FORMAT, "robot": robot, "obs_dim": obs_dim, "action_dim": action_dim,
               "preset": preset, "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
               "meta": meta or {}}
    if adapter_state:
        payload["adapter_state"] = {k: v.detach().cpu() for k, v in adapter_state.items()}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    summary = {k: payload[k] for k in ("format", "robot", "obs_dim", "action_dim", "preset", "meta")}
    atomic_write(Path(path).with_suffix(".yaml"),
                 lambda tmp: Path(tmp).write_text(yaml.safe_dump(summary, sort_keys=False)))
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
