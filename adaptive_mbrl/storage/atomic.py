"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

The new content goes to a temporary file next to the target, which then replaces the target in one
``os.replace``. The file gets the permissions an ordinary ``open(path, "w")`` would give it
(``0o666`` minus the process umask), not the ``0o600`` of :func:`tempfile.mkstemp`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml


def _umask() -> int:
    """The process umask (read by setting it and putting it back: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path`` atomically (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
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
