"""Where the shipped data folders live, for source checkouts and installed wheels alike."""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(folder: str) -> Path:
    """Return the directory of a shipped data folder.

    Args:
        folder: one of ``"robots"``, ``"controllers"``, ``"sim_configs"``, ``"benchmarks"``.

    A wheel carries the folders under ``adaptive_mbrl/_data/``; a source checkout or editable install has
    them beside the package. Raises ``FileNotFoundError`` naming both places when neither exists.
    """
    candidates = (_PACKAGE_DIR / "_data" / folder, _PACKAGE_DIR.parent / folder)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"data folder {folder!r} not found; looked in {', '.join(str(c) for c in candidates)}")


def robots_dir() -> Path:
    return data_dir("robots")


def controllers_dir() -> Path:
    return data_dir("controllers")


def sim_configs_dir() -> Path:
    return data_dir("sim_configs")


def benchmarks_dir() -> Path:
    return data_dir("benchmarks")
