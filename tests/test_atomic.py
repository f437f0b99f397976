"""storage.atomic: writes replace the file in one step and get the permissions of an ordinary file."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.storage.atomic import atomic_write, atomic_write_text, atomic_write_yaml


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_follow_the_umask_like_ordinary_files(tmp_path: Path, umask_022) -> None:
    """mkstemp creates 0600 files; a run folder's files must be readable like any other file (0644)."""
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_yaml(tmp_path / "b.yaml", {"k": 1})
    atomic_write(tmp_path / "c.bin", lambda tmp: Path(tmp).write_bytes(b"\0"))
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "plain.txt") == 0o644
    assert [_mode(tmp_path / n) for n in ("a.txt", "b.yaml", "c.bin")] == [0o644] * 3
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    atomic_write_yaml(target, {"old": True})

    def crash(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert yaml.safe_load(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_parents_are_created(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "b" / "c.txt", "deep")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "deep"
