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


SHIPPED_PREFIX = "shipped:"
"""Checkpoints shipped with the package are addressed as ``shipped:<robot>/<name>``."""


def shipped_checkpoints() -> list[str]:
    """``<robot>/<name>`` of every checkpoint under ``controllers/checkpoints/`` (sorted)."""
    root = controllers_dir() / "checkpoints"
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.glob("*/*.pt"))


def resolve_checkpoint(spec: str | Path, seed: int | None = None) -> Path:
    """The file a checkpoint reference names, without checking that it exists.

    ``shipped:<robot>/<name>`` -> ``controllers/checkpoints/<robot>/<name>.pt``; any other value is a path
    in which ``{seed}`` is replaced by ``seed`` (when given). The one place the Python API, the CLI and the
    evaluation suites resolve checkpoint references.
    """
    text = str(spec)
    if text.startswith(SHIPPED_PREFIX):
        return controllers_dir() / "checkpoints" / f"{text[len(SHIPPED_PREFIX):]}.pt"
    return Path(text if seed is None else text.replace("{seed}", str(seed)))


def existing_checkpoint(spec: str | Path, seed: int | None = None) -> Path:
    """:func:`resolve_checkpoint`, then check that the file exists.

    Raises:
        FileNotFoundError: a ``shipped:`` name that is not shipped (lists the shipped ones), or a path
            that is not a file.
    """
    path = resolve_checkpoint(spec, seed)
    if path.is_file():
        return path
    if str(spec).startswith(SHIPPED_PREFIX):
        names = ", ".join(f"{SHIPPED_PREFIX}{n}" for n in shipped_checkpoints()) or "(none shipped)"
        raise FileNotFoundError(f"no shipped checkpoint {str(spec)!r}; allowed: {names}")
    raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
