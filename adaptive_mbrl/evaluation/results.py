"""A suite's run folder: the resolved config and the finished episodes, safe against crashes.

``<out>/suite.yaml`` is the resolved suite (written atomically when the run starts; a resume must find
the same one). ``<out>/episodes.jsonl`` gets one JSON line per finished episode, flushed and fsynced as
it arrives, so an interrupted suite loses at most the episodes that were running. A torn last line (a
crash mid-write) is ignored on reading and that episode simply runs again.

Episodes are keyed by what produced them, including the checkpoint's *content*
(:func:`content_key`: the job's key plus the file's SHA-256), so a checkpoint replaced at the same path
(retrained, copied over) has its episodes run again instead of re-reporting the old model's.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from adaptive_mbrl.config import to_dict
from adaptive_mbrl.evaluation.suite import EpisodeJob, SuiteConfig
from adaptive_mbrl.storage.atomic import atomic_write_yaml
from adaptive_mbrl.storage.runs import config_differences, format_differences

EPISODES_FILE = "episodes.jsonl"
SUITE_FILE = "suite.yaml"
DIGEST_CHARS = 16
"""Hex characters of the checkpoint's SHA-256 kept in an episode key (64 bits)."""
LISTED_DIFFERENCES = 8
"""At most this many differing suite fields are named when a resume is refused."""
SHOWN_VALUE_CHARS = 60
"""Each differing value is shown cut to this many characters (a whole controller list is long)."""


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 (hex) of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_digests(jobs: Iterable[EpisodeJob]) -> dict[str, str]:
    """Checkpoint path -> SHA-256 of its content, computed once per distinct checkpoint of ``jobs``."""
    digests: dict[str, str] = {}
    for job in jobs:
        if job.checkpoint not in digests:
            digests[job.checkpoint] = file_sha256(job.checkpoint)
    return digests


def content_key(job_key: str, checkpoint_sha256: str) -> str:
    """The key an episode is stored and resumed under: the job's key and its checkpoint's content."""
    return f"{job_key}/{checkpoint_sha256[:DIGEST_CHARS]}"


def read_episodes(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The finished episodes of a suite run folder by their :func:`content_key` (none if it has no
    ``episodes.jsonl``; a torn or corrupt line is skipped)."""
    path = Path(folder) / EPISODES_FILE
    results: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return results
    for line in path.read_text().splitlines():
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict) and "key" in result:
            results[result["key"]] = result
    return results


def _same_suite(previous: Any, suite: SuiteConfig) -> bool:
    """Whether the ``suite.yaml`` data ``previous`` is ``suite`` once read with today's defaults (a folder
    written before a field was added, e.g. a controller's ``warmup_episodes``, resumes)."""
    from adaptive_mbrl.config import ConfigError, from_dict
    try:
        return from_dict(SuiteConfig, previous, source=SUITE_FILE) == suite
    except (ConfigError, ValueError, TypeError):
        return False


def describe_differences(previous: Any, config: dict[str, Any]) -> str:
    """The suite fields that differ between a run folder's ``suite.yaml`` data and the suite now asked
    for, e.g. ``episodes: run 5, now 10; robots.0.controllers.0.checkpoint: run 'a.pt', now 'b.pt'``
    (at most :data:`LISTED_DIFFERENCES`, then a count of the rest)."""
    if not isinstance(previous, dict):
        return "the folder's suite file is missing or unreadable"
    return format_differences(config_differences(previous, config, into_lists=True), LISTED_DIFFERENCES,
                              value_chars=SHOWN_VALUE_CHARS)


class RunFolder:
    """Reads and appends a suite run's results.

    Args:
        path: the run folder (created).
        suite: the resolved suite this run evaluates.
        resume: keep the finished episodes of an earlier run of the same suite in ``path``; with
            ``False`` an existing ``episodes.jsonl`` is an error (pass another folder or delete it).
    """

    def __init__(self, path: str | Path, suite: SuiteConfig, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.episodes_path = self.path / EPISODES_FILE
        config = to_dict(suite)
        suite_path = self.path / SUITE_FILE
        if self.episodes_path.exists():
            if not resume:
                raise FileExistsError(f"{self.path} already holds suite results; resume them (the default) or "
                                      "choose another --out")
            previous = yaml.safe_load(suite_path.read_text()) if suite_path.exists() else None
            if previous != config and not _same_suite(previous, suite):
                raise ValueError(f"{self.path} holds results of a different suite configuration (the suite "
                                 f"file changed since they were written: {describe_differences(previous, config)}); "
                                 f"choose another --out, or delete {self.path} to run this one there")
        atomic_write_yaml(suite_path, config)

    def finished(self) -> dict[str, dict[str, Any]]:
        """Finished episodes by job key (a torn or corrupt line is skipped)."""
        return read_episodes(self.path)

    def append(self, result: dict[str, Any]) -> None:
        """Add one finished episode durably (one line, flushed and fsynced)."""
        self._repair_torn_tail()
        with open(self.episodes_path, "a") as f:
            f.write(json.dumps(result) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _repair_torn_tail(self) -> None:
        """A crash mid-line leaves no newline at the end: start the next record on a fresh line."""
        if self.episodes_path.exists() and self.episodes_path.stat().st_size > 0:
            with open(self.episodes_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                with open(self.episodes_path, "a") as f:
                    f.write("\n")
