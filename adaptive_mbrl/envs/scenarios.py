"""Scenarios: what happens to a robot's dynamics at reset and during an episode.

``sim_configs/scenarios/<robot>.yaml`` maps scenario names to :class:`ScenarioSpec`. A scenario is a
distribution over :class:`Task` s: perturbation templates applied at reset, and events that switch
perturbations on at a given control step. A template is a perturbation whose values may be sampled::

    crippled_joint_train:              # the meta-train distribution
      family: crippled_joint
      split: train
      at_reset:
        - type: joint_damage
          joints: {choice: [[0], [1], [2], [3]]}   # one of joints 0-3, chosen at each reset
          scale: 0.0
    leg_break_midepisode:
      events:
        - at_step: 300                  # applied before the action of step 300 (0-based) is simulated
          perturbations: [{type: joint_damage, legs: [front], scale: 0.0}]

Samplers: ``{choice: [v, ...]}`` (uniform over the list) and ``{uniform: [lo, hi]}`` (floats). Train and
test scenarios of a family are meant to be disjoint; ``tests/test_scenarios.py`` checks that they are.

A scenario is named, wherever one is accepted (``adaptive_mbrl.make``, suites, ``adaptive-mbrl run / train
--scenario``), by a shipped name (``crippled_joint_test``) or as ``path/to/file.yaml:name`` for a scenario
file of the user's own (same format, a path relative to the current directory or absolute);
:func:`resolve_scenario` is the one place that turns either into a :class:`ScenarioSpec`. A scenario file may
name the Python modules that register its custom perturbation types (see
:func:`~adaptive_mbrl.envs.perturbations.register_perturbation`), imported before its scenarios are read::

    robot: half_cheetah
    imports: [my_package.perturbations, ./rust.py]   # a module name, or a .py file relative to this file
    scenarios: {rusty: {at_reset: [{type: rust, joints: [fshin]}]}}

Every invalid scenario of a file is reported at once, in one :class:`ScenarioFileError`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from adaptive_mbrl.config import ConfigError, bounded, from_dict
from adaptive_mbrl.envs.perturbations import (Perturbation, check_for_robot, describe,
                                              perturbation_from_dict)
from adaptive_mbrl.envs.robot_spec import RobotSpec, load_robot
from adaptive_mbrl.envs.simulator import Simulator
from adaptive_mbrl.paths import sim_configs_dir

SAMPLERS = ("choice", "uniform")


def _is_sampler(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SAMPLERS


def _candidates(value: Any) -> list[Any]:
    """The values a template entry can take (the two ends for ``uniform``)."""
    if not _is_sampler(value):
        return [value]
    (kind, arg), = value.items()
    return list(arg)


def _sample(value: Any, rng: np.random.Generator) -> Any:
    if not _is_sampler(value):
        return value
    (kind, arg), = value.items()
    if kind == "choice":
        return arg[int(rng.integers(len(arg)))]
    return float(rng.uniform(arg[0], arg[1]))


@dataclass(frozen=True)
class PerturbationTemplate:
    """A perturbation mapping whose field values may be samplers; validated when loaded."""

    data: dict[str, Any]

    def sample(self, rng: np.random.Generator) -> Perturbation:
        return perturbation_from_dict({k: _sample(v, rng) for k, v in self.data.items()})

    def support(self) -> dict[str, list[Any]]:
        """For each field, the values it can take (``uniform``: its two ends)."""
        return {k: _candidates(v) for k, v in self.data.items() if k != "type"}

    def corners(self) -> list[Perturbation]:
        """One perturbation per value each sampled field can take, the other fields at their first value."""
        base = {k: _candidates(v)[0] for k, v in self.data.items()}
        return [perturbation_from_dict({**base, key: value}) for key, values in self.support().items()
                for value in values] or [perturbation_from_dict(base)]

    @classmethod
    def parse(cls, data: Any, robot: RobotSpec, source: str, path: str) -> "PerturbationTemplate":
        if not isinstance(data, dict):
            raise ConfigError(source, path, "expected a perturbation mapping with a 'type' key")
        for key, value in data.items():
            if isinstance(value, dict) and not _is_sampler(value):
                raise ConfigError(source, f"{path}.{key}", f"{value!r} is not a sampler; allowed: "
                                  "{choice: [values]} or {uniform: [lo, hi]}")
            if _is_sampler(value):
                (kind, arg), = value.items()
                if not isinstance(arg, list) or not arg or (kind == "uniform" and (
                        len(arg) != 2 or not all(isinstance(a, (int, float)) for a in arg) or arg[0] > arg[1])):
                    raise ConfigError(source, f"{path}.{key}.{kind}",
                                      f"{arg!r} is not valid; allowed: a non-empty list for choice, "
                                      "[lo, hi] numbers with lo <= hi for uniform")
        template = cls(data)
        # Validate every value each sampled field can take, the others held at their first value.
        # (A template without sampled fields, e.g. {type: ...} alone, is checked once, as it is.)
        base = {k: _candidates(v)[0] for k, v in data.items()}
        variants = [{**base, key: value} for key, values in template.support().items() for value in values]
        for variant in variants or [base]:
            try:
                perturbation = perturbation_from_dict(variant, source, path)
                check_for_robot(perturbation, robot)
            except ValueError as err:
                if isinstance(err, ConfigError):
                    raise
                raise ConfigError(source, path, str(err)) from None
        return template


@dataclass(frozen=True)
class Event:
    """At control step ``at_step``, add ``perturbations`` (or replace the active ones if ``replace``)."""

    at_step: int
    perturbations: tuple[Perturbation, ...]
    replace: bool = False


@dataclass(frozen=True)
class Task:
    """One concrete dynamics setting for an episode: perturbations at reset and scheduled events."""

    at_reset: tuple[Perturbation, ...] = ()
    events: tuple[Event, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Plain-data description, also used as ``info['task']``."""
        return {"at_reset": [describe(p) for p in self.at_reset],
                "events": [{"at_step": e.at_step, "replace": e.replace,
                            "perturbations": [describe(p) for p in e.perturbations]} for e in self.events]}

    @property
    def task_id(self) -> str:
        """Short stable hash of the task description (equal tasks have equal ids)."""
        text = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EventSpec:
    at_step: int = bounded(lo=0)
    perturbations: list[dict[str, Any]] = field(default_factory=list)
    replace: bool = False


@dataclass(frozen=True)
class ScenarioSpec:
    """A distribution over tasks for one robot (see the module docstring for the YAML form).

    Attributes:
        description: one line for ``adaptive-mbrl list``.
        family: name shared by a train scenario and its held-out test scenarios.
        split: ``train`` (meta-training), ``test`` (held out) or ``any``.
        at_reset: perturbation templates sampled and applied at every reset.
        events: mid-episode switches.
    """

    description: str = ""
    family: str = ""
    split: Literal["train", "test", "any"] = "any"
    at_reset: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventSpec] = field(default_factory=list)
    name: str = ""
    robot: str = ""

    def __post_init__(self) -> None:
        steps = [e.at_step for e in self.events]
        if steps != sorted(steps):
            raise ValueError(f"events: at_step values must be increasing, got {steps}")

    @functools.cached_property
    def _templates(self) -> tuple[list[PerturbationTemplate], list[tuple[EventSpec, list[PerturbationTemplate]]]]:
        robot = load_robot(self.robot)
        at_reset = [PerturbationTemplate.parse(d, robot, self.name, f"at_reset[{i}]")
                    for i, d in enumerate(self.at_reset)]
        events = [(e, [PerturbationTemplate.parse(d, robot, self.name, f"events[{i}].perturbations[{j}]")
                       for j, d in enumerate(e.perturbations)]) for i, e in enumerate(self.events)]
        return at_reset, events

    def validate(self, robot: RobotSpec, source: str, path: str) -> None:
        """Check every template against ``robot``; raises ConfigError naming ``source`` and the field."""
        for i, d in enumerate(self.at_reset):
            PerturbationTemplate.parse(d, robot, source, f"{path}.at_reset[{i}]")
        for i, e in enumerate(self.events):
            for j, d in enumerate(e.perturbations):
                PerturbationTemplate.parse(d, robot, source, f"{path}.events[{i}].perturbations[{j}]")

    def check_episode_steps(self, episode_steps: int) -> None:
        """Raise ValueError if an event could never fire in an episode of ``episode_steps`` control steps."""
        check_events(self.events, episode_steps, f"scenario {self.name or '<ScenarioSpec>'!r}")

    def check_for_sim(self, sim: Simulator) -> None:
        """Raise ValueError if a perturbation cannot act on ``sim`` (e.g. a body its model lacks)."""
        robot = load_robot(self.robot)
        for template in self.templates():
            for perturbation in template.corners():
                perturbation.check_sim(sim, robot)

    def templates(self) -> list[PerturbationTemplate]:
        """All perturbation templates, at reset and in events."""
        at_reset, events = self._templates
        return at_reset + [t for _, ts in events for t in ts]

    def sample(self, rng: np.random.Generator) -> Task:
        """Draw one task."""
        at_reset, events = self._templates
        return Task(at_reset=tuple(t.sample(rng) for t in at_reset),
                    events=tuple(Event(e.at_step, tuple(t.sample(rng) for t in ts), e.replace)
                                 for e, ts in events))


def check_events(events: Any, episode_steps: int, what: str) -> None:
    """Raise ValueError naming the first of ``events`` (each with ``at_step``) that an episode of
    ``episode_steps`` control steps never reaches (steps run 0 .. episode_steps - 1)."""
    for i, event in enumerate(events):
        if event.at_step >= episode_steps:
            raise ValueError(f"{what}: events[{i}] at step {event.at_step} would never fire: the episode has "
                             f"{episode_steps} steps (0..{episode_steps - 1}); allowed: at_step < episode_steps "
                             f"(use episode_steps >= {event.at_step + 1}, or move the event)")


@dataclass(frozen=True)
class ScenarioFile:
    robot: str
    scenarios: dict[str, Any]
    imports: list[str] = field(default_factory=list)


class ScenarioFileError(ConfigError):
    """A scenario file with invalid scenarios; ``errors`` holds one ConfigError per invalid scenario."""

    def __init__(self, source: str, errors: list[ConfigError]) -> None:
        self.errors = errors
        if len(errors) == 1:
            super().__init__(errors[0].source, errors[0].field, errors[0].problem)
            return
        listing = "\n".join(f"  - {e.field}: {e.problem}" for e in errors)
        super().__init__(source, "scenarios", f"{len(errors)} invalid scenarios (every one listed):\n{listing}")


def scenario_file(robot: str) -> Path:
    return sim_configs_dir() / "scenarios" / f"{robot}.yaml"


@functools.lru_cache(maxsize=None)
def load_scenarios(robot: str) -> dict[str, ScenarioSpec]:
    """All scenarios of ``robot`` from ``sim_configs/scenarios/<robot>.yaml``, validated."""
    spec = load_robot(robot)
    file = scenario_file(robot)
    if not file.exists():
        return {"nominal": ScenarioSpec(description="nominal dynamics", name="nominal", robot=robot)}
    return parse_scenario_file(yaml.safe_load(file.read_text()), spec, str(file), file.parent)


def parse_scenario_file(data: Any, robot: RobotSpec, source: str, folder: Path | None = None
                        ) -> dict[str, ScenarioSpec]:
    """Validate a scenario-file mapping ``{robot: ..., imports: [...], scenarios: {...}}`` for ``robot``.

    ``imports`` (module names, or ``.py`` files relative to ``folder``) are imported first. Raises
    :class:`ScenarioFileError` listing every invalid scenario, whichever one a caller wants.
    """
    parsed = from_dict(ScenarioFile, data, source=source)
    if parsed.robot != robot.name:
        raise ConfigError(source, "robot", f"{parsed.robot!r} does not match {robot.name!r}")
    for i, module in enumerate(parsed.imports):
        _import(module, folder, source, f"imports[{i}]")
    scenarios, errors = {}, []
    for name, value in parsed.scenarios.items():
        path = f"scenarios.{name}"
        try:
            scenario = from_dict(ScenarioSpec, value, source=source, path=path)
            if scenario.name or scenario.robot:
                raise ConfigError(source, path, "keys 'name' and 'robot' are set by the loader")
            scenario.validate(robot, source, path)
        except ConfigError as err:
            errors.append(err)
            continue
        scenarios[name] = dataclasses.replace(scenario, name=name, robot=robot.name)
    if errors:
        raise ScenarioFileError(source, errors)
    return scenarios


def _import(module: str, folder: Path | None, source: str, path: str) -> None:
    """Import a module by name, or a ``.py`` file (relative to ``folder``) once per process."""
    try:
        if not module.endswith(".py"):
            importlib.import_module(module)
            return
        file = (folder or Path.cwd()) / module
        key = "adaptive_mbrl_user_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
        if key in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(key, file)
        if spec is None or not file.is_file():
            raise FileNotFoundError(f"no file {str(file)!r}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[key] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[key]
            raise
    except Exception as err:  # any failure of the user's module: report it against the field
        raise ConfigError(source, path, f"cannot import {module!r}: {type(err).__name__}: {err}; allowed: an "
                          "importable module name or a .py file relative to the scenario file") from err


def load_scenario_file(file: str | Path, robot: RobotSpec) -> dict[str, ScenarioSpec]:
    """Every scenario of a user's scenario file for ``robot``, validated (read afresh at each call)."""
    file = Path(file)
    try:
        data = yaml.safe_load(file.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(str(file), "", "scenario file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(file), "", f"not valid YAML: {err}") from None
    return parse_scenario_file(data, robot, str(file), file.parent)


def list_scenarios(robot: str) -> list[str]:
    """Names of the scenarios shipped for ``robot``."""
    return list(load_scenarios(robot))


def split_scenario_ref(scenario: str) -> tuple[str, str] | None:
    """``("path/file.yaml", "name")`` for a ``path/file.yaml:name`` reference, None for a shipped name."""
    file, sep, name = scenario.rpartition(":")
    if sep and file.endswith((".yaml", ".yml")):
        return file, name
    return None


def resolve_scenario(robot: str | RobotSpec, scenario: "str | ScenarioSpec") -> ScenarioSpec:
    """The one resolver of scenario names: a shipped name, ``path/to/file.yaml:name`` of a user's file,
    or a :class:`ScenarioSpec` built in code (validated and bound to the robot).

    Raises:
        ConfigError: an invalid scenario file (every invalid scenario listed) or ScenarioSpec.
        ValueError: an unknown name, listing the allowed ones.
    """
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    if isinstance(scenario, ScenarioSpec):
        if scenario.robot and scenario.robot != spec.name:
            raise ValueError(f"scenario {scenario.name!r} is for robot {scenario.robot!r}, not {spec.name!r}")
        # A spec built in code has not been through the file loader: check it against this robot, and bind it
        # to the robot (its templates are resolved by robot name when tasks are sampled).
        scenario.validate(spec, "<ScenarioSpec>", scenario.name or "scenario")
        return scenario if scenario.robot else dataclasses.replace(scenario, robot=spec.name)
    if not isinstance(scenario, str):
        raise TypeError(f"scenario must be a name, a 'file.yaml:name' or a ScenarioSpec, got {scenario!r}")
    ref = split_scenario_ref(scenario)
    if ref is not None:
        file, name = ref
        scenarios = load_scenario_file(file, spec)
        if name not in scenarios:
            raise ValueError(f"{file}: no scenario {name!r}; allowed: {', '.join(scenarios)}")
        return scenarios[name]
    scenarios = load_scenarios(spec.name)
    if scenario not in scenarios:
        raise ValueError(f"unknown scenario {scenario!r} for robot {spec.name!r}; allowed: {', '.join(scenarios)}, "
                         "or path/to/your_file.yaml:name")
    return scenarios[scenario]


def get_scenario(robot: str, name: str) -> ScenarioSpec:
    """The scenario ``name`` of ``robot`` (a shipped name or ``file.yaml:name``); see :func:`resolve_scenario`."""
    return resolve_scenario(robot, name)


def scenario_slug(scenario: str) -> str:
    """A file-name-safe short form of a scenario reference: shipped names as they are, ``dir/f.yaml:x``
    as ``f-x-<hash of the full reference>`` (different files never collide)."""
    ref = split_scenario_ref(scenario)
    text = scenario if ref is None else f"{Path(ref[0]).stem}-{ref[1]}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "scenario"
    if ref is not None or slug != scenario:
        slug += "-" + hashlib.sha1(scenario.encode()).hexdigest()[:6]
    return slug
