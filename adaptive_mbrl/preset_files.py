"""Preset files: find a controller preset YAML by name and read it, with ``base:`` inheritance, as plain data.

Shared by the model-based presets (:mod:`adaptive_mbrl.presets`) and the baseline presets (PEARL, RL²), so
that neither imports the other's package. This module knows folders and YAML only, no preset types.

Shipped presets live in three folders of ``controllers/``, each a group of names::

    controllers/<name>.yaml              "mb", "grbal", ...           the model-based methods
    controllers/baselines/<name>.yaml    "pearl", "rl2"               the model-free baselines
    controllers/reference/<name>.yaml    "reference/grbal_paper"      reference-size settings (no code uses them)

A preset file may start from another and give only what differs::

    base: mb                 # a preset name, or a .yaml path (relative to this file's folder)
    name: mb_de
    adapter: {kind: finetune, window: 16, steps: 1, learning_rate: 0.0001, optimizer: adam}

Sections (mappings) are merged key by key, recursively; any other value (a number, a string, a list)
replaces the base's. ``name`` defaults to the file's stem and ``description`` is not inherited (a variant
is not its base). The merged data is validated by the caller, as strictly as a file without ``base``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.paths import controllers_dir

BASELINES = "baselines"
REFERENCE = "reference"
NOT_INHERITED = ("name", "description")


def group_dirs() -> dict[str, Path]:
    """Folder of each group of shipped presets: ``""`` (model-based), ``baselines``, ``reference``."""
    root = controllers_dir()
    return {"": root, BASELINES: root / BASELINES, REFERENCE: root / REFERENCE}


def shipped_presets(group: str = "") -> dict[str, Path]:
    """Name -> file of the shipped presets of one group (reference names carry a ``reference/`` prefix)."""
    folder = group_dirs()[group]
    prefix = f"{REFERENCE}/" if group == REFERENCE else ""
    return {prefix + p.stem: p for p in sorted(folder.glob("*.yaml"))}


def all_shipped_presets() -> dict[str, Path]:
    """Name -> file of every shipped preset, of all groups."""
    found: dict[str, Path] = {}
    for group in group_dirs():
        found.update(shipped_presets(group))
    return found


def preset_path(preset: str | Path, relative_to: Path | None = None) -> Path:
    """The file of a preset name (any group) or a ``.yaml`` / ``.yml`` path (``relative_to``: the folder a
    relative path starts from; default the working directory).

    Raises:
        ValueError: an unknown name; the message lists every shipped name.
    """
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        return relative_to / path if relative_to is not None and not path.is_absolute() else path
    shipped = all_shipped_presets()
    if str(preset) not in shipped:
        raise ValueError(f"unknown controller preset {str(preset)!r}; allowed: {', '.join(shipped)} "
                         "or a path to a preset .yaml")
    return shipped[str(preset)]


def read_preset_data(path: str | Path) -> dict[str, Any]:
    """The plain data of the preset file ``path``, its ``base:`` chain merged in (not yet validated).

    Raises:
        ConfigError: the file (or a base) is missing, not YAML, not a mapping, names an unknown base, or
            its bases form a cycle (the message shows the chain).
    """
    return _read(Path(path), ())


def _read(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """``path``'s data merged onto its base's; ``chain``: the files that inherit from it, child first."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(str(chain[0]), "base", f"presets inherit in a cycle: {cycle}")
    data = _load(path)
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(str(path), "base", f"expected a preset name or a .yaml path, got {base!r}")
    try:
        base_path = preset_path(base, relative_to=path.parent)
    except ValueError as err:
        raise ConfigError(str(path), "base", str(err)) from None
    merged = _read(base_path, (*chain, resolved))
    for key in NOT_INHERITED:
        merged.pop(key, None)
    merged.setdefault("name", path.stem)
    return deep_merge(merged, data)


def _load(path: Path) -> dict[str, Any]:
    """One file's mapping, unmerged."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), "", f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", f"expected a mapping of preset settings, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top: mappings in both are merged recursively, other values replaced.
    Neither argument is modified."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
