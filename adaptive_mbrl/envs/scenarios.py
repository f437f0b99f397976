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
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from adaptive_mbrl.config import ConfigError, bounded, from_dict
from adaptive_mbrl.envs.perturbations import (Perturbation, check_for_robot, describe,
                                              perturbation_from_dict)
from adaptive_mbrl.envs.robot_spec import RobotSpec, load_robot
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
        base = {k: _candidates(v)[0] for k, v in data.items()}
        for key, values in template.support().items():
            for value in values:
                try:
                    perturbation = perturbation_from_dict({**base, key: value}, source, path)
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


@dataclass(frozen=True)
class ScenarioFile:
    robot: str
    scenarios: dict[str, ScenarioSpec]


def scenario_file(robot: str) -> Path:
    return sim_configs_dir() / "scenarios" / f"{robot}.yaml"


@functools.lru_cache(maxsize=None)
def load_scenarios(robot: str) -> dict[str, ScenarioSpec]:
    """All scenarios of ``robot`` from ``sim_configs/scenarios/<robot>.yaml``, validated."""
    spec = load_robot(robot)
    file = scenario_file(robot)
    if not file.exists():
        return {"nominal": ScenarioSpec(description="nominal dynamics", name="nominal", robot=robot)}
    return parse_scenario_file(yaml.safe_load(file.read_text()), spec, str(file))


def parse_scenario_file(data: Any, robot: RobotSpec, source: str) -> dict[str, ScenarioSpec]:
    """Validate a scenario-file mapping ``{robot: ..., scenarios: {...}}`` for ``robot``."""
    parsed = from_dict(ScenarioFile, data, source=source)
    if parsed.robot != robot.name:
        raise ConfigError(source, "robot", f"{parsed.robot!r} does not match {robot.name!r}")
    scenarios = {}
    for name, scenario in parsed.scenarios.items():
        if scenario.name or scenario.robot:
            raise ConfigError(source, f"scenarios.{name}", "keys 'name' and 'robot' are set by the loader")
        scenario.validate(robot, source, f"scenarios.{name}")
        scenarios[name] = dataclasses.replace(scenario, name=name, robot=robot.name)
    return scenarios


def list_scenarios(robot: str) -> list[str]:
    """Names of the scenarios shipped for ``robot``."""
    return list(load_scenarios(robot))


def get_scenario(robot: str, name: str) -> ScenarioSpec:
    """The scenario ``name`` of ``robot``; raises ValueError listing the allowed names."""
    scenarios = load_scenarios(robot)
    if name not in scenarios:
        raise ValueError(f"unknown scenario {name!r} for robot {robot!r}; allowed: {', '.join(scenarios)}")
    return scenarios[name]
