"""Controller presets: ``controllers/<name>.yaml`` -> :class:`ControllerPreset`.

A preset fixes everything a method needs: the dynamics network, the online adapter, the planner, and
how the model is trained. ``adaptive-mbrl list`` shows the shipped ones; a path to your own YAML works
wherever a preset name does. A preset file may say ``base: <name or path>`` and give only what differs
(see :mod:`adaptive_mbrl.preset_files`); :func:`save_preset` writes the merged, flat result.

:func:`load_preset` also loads the model-free baselines' presets (``controllers/baselines/``, a
:class:`~adaptive_mbrl.baseline_presets.PEARLPreset` or :class:`~adaptive_mbrl.baseline_presets.RL2Preset`,
picked by the file's ``kind``) and the reference-size ones (``reference/<name>``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from adaptive_mbrl.adaptation.base import AdapterConfig
from adaptive_mbrl.config import ConfigError, bounded, from_dict, load_yaml, to_dict
from adaptive_mbrl.models.dynamics import ModelConfig
from adaptive_mbrl.paths import controllers_dir
from adaptive_mbrl.planning import PlannerConfig
from adaptive_mbrl.storage.atomic import atomic_write_yaml
from adaptive_mbrl.baseline_presets import KINDS as BASELINE_KINDS
from adaptive_mbrl.baseline_presets import BaselinePreset, baseline_from_dict
from adaptive_mbrl.preset_files import preset_path, read_preset_data, shipped_presets


@dataclass
class TrainingConfig:
    """How a model-based preset is trained (``adaptive-mbrl train``).

    Attributes:
        random_steps: environment steps of uniformly random actions collected first.
        iterations: on-policy rounds of (collect with the MPC controller -> refit the model).
        steps_per_iteration: environment steps collected per round (across all parallel envs).
        parallel_envs: environments stepped in lockstep; the planner plans for all in one batched call.
        episode_steps: episode length while collecting (0 = the robot's own).
        epochs: maximum fitting epochs after each round (early stopping on a validation split).
        first_epochs: maximum fitting epochs on the random data.
    """

    random_steps: int = bounded(5000, lo=1)
    iterations: int = bounded(10, lo=0)
    steps_per_iteration: int = bounded(5000, lo=1)
    parallel_envs: int = bounded(4, lo=1)
    episode_steps: int = bounded(0, lo=0)
    epochs: int = bounded(20, lo=1)
    first_epochs: int = bounded(60, lo=1)


@dataclass
class MetaConfig:
    """How a GrBAL / ReBAL preset is meta-trained (``adaptive-mbrl train`` dispatches to meta-training when
    the preset's adapter is ``grbal`` or ``rebal``). The past window M is ``adapter.window``; GrBAL's inner
    steps and step size are ``adapter.steps`` / ``adapter.learning_rate`` (``adapter.learn_inner_lr`` for
    Meta-SGD). Collection uses the ``training`` section (random steps, rounds, steps, parallel envs).

    Attributes:
        future: K, transitions after the window on which the adapted model is scored.
        meta_batch: segments (each of M + K transitions from one episode and task) per meta-update.
        first_order: GrBAL: drop the second-order terms of the meta-gradient (FOMAML).
        learning_rate: Adam step size of the meta-update (prior, Meta-SGD rates, ReBAL encoder).
        first_updates: meta-updates on the random data before the first round.
        updates_per_iteration: meta-updates after each round of collection.
        grad_clip: clip the meta-gradient's global norm to this (0 = no clipping).
        prior_weight: GrBAL: add this times the unadapted prior's loss on all M + K transitions of each
            segment to the meta-loss, so the prior is also a good model on its own (an episode's first
            steps have no window to adapt from) and every transition trains it, not only the K future ones.
    """

    future: int = bounded(16, lo=1)
    meta_batch: int = bounded(10, lo=1)
    first_order: bool = False
    learning_rate: float = bounded(1e-3, lo=0.0, lo_open=True)
    first_updates: int = bounded(1000, lo=0)
    updates_per_iteration: int = bounded(300, lo=0)
    grad_clip: float = bounded(10.0, lo=0.0)
    prior_weight: float = bounded(0.0, lo=0.0)


@dataclass
class ControllerPreset:
    """One method: model + adapter + planner (+ how to train it)."""

    name: str
    planner: PlannerConfig
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)


def list_presets(group: str = "") -> list[str]:
    """Names of the shipped presets of one group: ``""`` the model-based methods (``controllers/*.yaml``),
    ``"baselines"`` PEARL / RL², ``"reference"`` the reference-size settings (``reference/<name>``)."""
    return list(shipped_presets(group))


def load_preset(preset: str | Path) -> ControllerPreset | BaselinePreset:
    """A shipped preset by name (any group), or a preset YAML file by path; unknown names list the allowed
    ones. ``base:`` chains are merged first, then the result is validated strictly (errors name this file
    and the field). A file whose ``kind`` is ``pearl`` or ``rl2`` gives that baseline's preset type."""
    path = preset_path(preset)
    data = read_preset_data(path)
    if data.get("kind") in BASELINE_KINDS:
        return baseline_from_dict(data, source=str(path))
    return from_dict(ControllerPreset, data, source=str(path))


def with_overrides(preset: ControllerPreset | BaselinePreset, overrides: list[str]) -> ControllerPreset | BaselinePreset:
    """A copy of ``preset`` with ``SECTION.KEY=VALUE`` settings applied, validated like the YAML file.

    Values are parsed as YAML (``training.iterations=3``, ``planner.kind=cem``,
    ``model.hidden_sizes=[64,64]``). Used to give every method the same reduced budget in a benchmark.

    Raises:
        ConfigError: a setting without ``=``, an unknown section or key (the error lists the allowed ones),
            or a value of the wrong type or out of range.
    """
    data = to_dict(preset)
    for item in overrides:
        dotted, sep, text = item.partition("=")
        keys = dotted.strip().split(".")
        if not sep or not all(keys):
            raise ConfigError("--set", item, "expected SECTION.KEY=VALUE, e.g. training.iterations=3")
        node = data
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                allowed = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise ConfigError("--set", ".".join(keys[:depth + 1]), f"unknown section; allowed: {allowed}")
            node = node[key]
        if keys[-1] not in node:
            raise ConfigError("--set", dotted, f"unknown key; allowed keys: {', '.join(node)}")
        node[keys[-1]] = yaml.safe_load(text)
    return from_dict(type(preset), data, source="--set")


# What a trained controller's settings may change at run time: the network comes from the checkpoint and the
# training / meta sections act in training only, so overriding those at run time would silently do nothing.
RUN_TIME_SECTIONS = ("adapter", "planner")


def with_run_overrides(preset: ControllerPreset, overrides: list[str]) -> ControllerPreset:
    """:func:`with_overrides` for running a trained model (``run --set``, ``eval --set``, a suite entry's
    ``set:``): only ``adapter.*`` and ``planner.*`` settings, e.g. ``adapter.context_gate=true``.

    Raises:
        ConfigError: a setting of another section (naming it and the allowed ones), or any error of
            :func:`with_overrides`.
    """
    for item in overrides:
        section = item.partition("=")[0].strip().split(".")[0]
        if "=" in item and section not in RUN_TIME_SECTIONS:
            raise ConfigError("--set", item.partition("=")[0].strip(),
                              f"a trained controller can change only {' and '.join(RUN_TIME_SECTIONS)} settings "
                              "at run time (the network comes from the checkpoint; training and meta act in "
                              "training); allowed sections: " + ", ".join(RUN_TIME_SECTIONS))
    return with_overrides(preset, overrides)


def save_preset(preset: ControllerPreset | BaselinePreset, path: str | Path) -> Path:
    """Write ``preset`` as a flat preset YAML (every setting, no ``base:``) that :func:`load_preset` reads
    back equal (atomic: a crash leaves the old file or the new one, never half of one). Use it with
    :func:`with_overrides` to run a changed copy of a shipped preset wherever a preset path is accepted
    (suites, benchmarks)."""
    path = Path(path)
    atomic_write_yaml(path, to_dict(preset))
    return path
