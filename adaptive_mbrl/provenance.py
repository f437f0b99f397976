"""Where a number was measured: date, machine, package versions and git revision.

Every benchmark script prints :func:`provenance_line` above its table, and evaluation run folders record
:func:`provenance` in their summary, so a figure quoted on a results page (``docs/results/``) carries
what is needed to judge it and to re-measure it::

    >>> from adaptive_mbrl.provenance import provenance_line
    >>> print(provenance_line())   # doctest: +SKIP
    2026-12-03 10:12 UTC | AMD EPYC, 2 cores, load 0.4 | python 3.11.7, torch 2.13.0, mujoco 4.0.0, ... | git 93550d1
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "mujoco", "numpy", "gymnasium", "pybullet")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"absent"`` for one that is not installed)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def git_revision(root: str | Path | None = None) -> str:
    """The short git revision of the source tree (``+dirty`` when it has uncommitted changes), or
    ``"unknown"`` outside a git checkout (e.g. an installed wheel)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}+dirty" if dirty else rev


def provenance() -> dict[str, object]:
    """Date (UTC), machine (CPU, cores, 1-min load average), package versions and git revision."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": os.cpu_count() or 0, "load_1min": round(load, 2),
            "versions": package_versions(), "git": git_revision()}


def provenance_line(info: dict[str, object] | None = None) -> str:
    """:func:`provenance` (or ``info``, a dict it returned) as one line, for the head of a benchmark's output."""
    info = provenance() if info is None else info
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())  # type: ignore[union-attr]
    return (f"{info['date']} | {info['cpu']}, {info['cores']} cores, load {info['load_1min']} | {versions} | "
            f"git {info['git']}")
