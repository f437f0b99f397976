"""Dynamics-shift evaluation suites: robots x scenarios x controllers x seeds x episodes, from YAML.

A suite file ``sim_configs/suites/<name>.yaml``::

    name: quickstart
    description: shipped half_cheetah controllers on held-out damage, payload and friction
    seeds: [0]                 # controller seeds; "{seed}" in a checkpoint path picks one model per seed
    episodes: 2                # per (robot, scenario, controller, seed)
    episode_steps: 500         # optional: shorter episodes than the robot's default
    baseline: MB               # the label the summary's ratio column divides by
    robots:
      - robot: half_cheetah
        backend: mujoco
        episodes: 3            # optional: this block's episodes (default: the suite's)
        scenarios: [crippled_joint_test, payload_test, friction_test, joint_break_midepisode]
        controllers:
          - {label: MB, checkpoint: "shipped:half_cheetah/mb", preset: mb}
          - {label: MB+DE, checkpoint: "shipped:half_cheetah/mb", preset: mb_de}
          - {label: ReBAL-gated, checkpoint: "shipped:half_cheetah/rebal", set: [adapter.context_gate=true]}
          - {label: PEARL, checkpoint: "shipped:half_cheetah/pearl", optional: true}
          - {label: PEARL-2nd, checkpoint: "shipped:half_cheetah/pearl", optional: true,
             set: [adapt_within_episode=false], warmup_episodes: 1}

A scenario is a shipped name or ``path/to/file.yaml:name`` of a scenario file of your own (see
:mod:`adaptive_mbrl.envs.scenarios`; a relative path is relative to the current directory). ``checkpoint``
is ``shipped:<robot>/<name>`` (``controllers/checkpoints/<robot>/<name>.pt``, trained with
``adaptive-mbrl train``, see ``controllers/checkpoints/README.md``) or a file path, in which ``{seed}``
is replaced by each seed. ``preset`` (optional) runs the trained network with another preset's adapter
and planner (e.g. an MB model as MB+DE); ``set`` (optional) then changes ``adapter.*`` / ``planner.*``
settings of it, as ``adaptive-mbrl run --set`` does. ``baseline`` must be one of the labels, and a
checkpoint must have been trained on its block's robot (both checked when the suite loads, as are the
``set`` settings against the checkpoint's preset). ``warmup_episodes: N`` (default 0; PEARL / RL² checkpoints
only) plays N unscored episodes of the same task before each scored episode, the controller keeping its
context between them (``reset(new_task=False)``): PEARL's original between-episode protocol (z inferred
from the earlier episodes of the task) and RL²'s trials (see
:func:`~adaptive_mbrl.evaluation.episode.run_warmup`). An ``optional`` controller whose checkpoint is missing is skipped
(and listed in the report); a missing required one is an error before anything runs.

Episode ``i`` of every (controller, seed) uses environment seed ``episode_seed + i``, so all methods face
the same tasks, and every job is seeded from its own fields only: results do not depend on the order or
the process in which jobs run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adaptive_mbrl.config import ConfigError, load_yaml
from adaptive_mbrl import paths
from adaptive_mbrl.paths import sim_configs_dir

SHIPPED = "shipped:"


@dataclass
class ControllerEntry:
    """One method in a suite: a label, a checkpoint, optionally another preset to run it with and run-time
    settings (``set``: ``SECTION.KEY=VALUE`` of the adapter or planner, e.g. ``adapter.context_gate=true``)."""

    label: str
    checkpoint: str
    preset: str | None = None
    optional: bool = False
    set: list[str] = field(default_factory=list)
    warmup_episodes: int = 0  # unscored episodes of the same task before each scored one (PEARL / RL²)

    def __post_init__(self) -> None:
        if isinstance(self.warmup_episodes, bool) or not isinstance(self.warmup_episodes, int) \
                or self.warmup_episodes < 0:
            raise ValueError(f"warmup_episodes: {self.warmup_episodes!r} is out of range; allowed: an integer >= 0 "
                             "(unscored episodes of the same task before each scored episode)")
        if not self.label.strip():
            raise ValueError("label must not be empty")
        if "/" in self.label:
            raise ValueError(f"label {self.label!r} must not contain '/'")


@dataclass
class RobotBlock:
    """The scenarios one robot is evaluated on and the controllers that run on it."""

    robot: str
    scenarios: list[str]
    controllers: list[ControllerEntry]
    backend: Literal["mujoco", "pybullet"] = "mujoco"
    episodes: int | None = None  # episodes per (scenario, controller, seed) in this block; None: the suite's

    def __post_init__(self) -> None:
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(f"episodes must be >= 1 or null (the suite's), got {self.episodes}")
        if not self.scenarios:
            raise ValueError("scenarios must list at least one scenario")
        if not self.controllers:
            raise ValueError("controllers must list at least one controller")
        labels = [c.label for c in self.controllers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"controller labels must be unique, got {labels}")


@dataclass
class SuiteConfig:
    """A whole suite (see the module docstring)."""

    name: str
    robots: list[RobotBlock]
    description: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    episodes: int = 1
    episode_steps: int | None = None
    episode_seed: int = 10_000
    baseline: str = "MB"

    def __post_init__(self) -> None:
        if not self.robots:
            raise ValueError("robots must list at least one robot block")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.episode_steps is not None and self.episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1 or null, got {self.episode_steps}")


@dataclass(frozen=True)
class EpisodeJob:
    """One evaluation episode: everything needed to run it in any process, and nothing else."""

    robot: str
    backend: str
    scenario: str
    label: str
    checkpoint: str
    preset: str | None
    seed: int
    episode: int
    env_seed: int
    episode_steps: int | None
    overrides: tuple[str, ...] = ()
    warmup_episodes: int = 0

    @property
    def key(self) -> str:
        """Unique id inside a suite; finished keys are skipped on resume. Run-time settings (``set``) and the
        warm-up episodes are part of it, so an episode played with other settings or another warm-up is never
        taken for this one (keys without either are those of earlier versions)."""
        key = f"{self.robot}/{self.backend}/{self.scenario}/{self.label}/s{self.seed}/e{self.episode}"
        key += f"|set={','.join(self.overrides)}" if self.overrides else ""
        return key + (f"|warmup={self.warmup_episodes}" if self.warmup_episodes else "")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def suites_dir() -> Path:
    return sim_configs_dir() / "suites"


def list_suites() -> list[str]:
    """Names of the shipped suites."""
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def load_suite(suite: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SuiteConfig:
    """A shipped suite by name or a suite YAML by path, validated (robots, scenarios, presets exist, the
    baseline is a label, checkpoints fit their robot, ``set`` settings apply). ``overrides`` (``eval
    --set``) are added to the ``set`` of every model-based controller."""
    path = Path(suite)
    if path.suffix not in (".yaml", ".yml"):
        names = list_suites()
        if str(suite) not in names:
            raise ValueError(f"unknown suite {suite!r}; allowed: {', '.join(names)} or a path to a suite .yaml")
        path = suites_dir() / f"{suite}.yaml"
    config = load_yaml(SuiteConfig, path)
    if overrides:
        from adaptive_mbrl.evaluation.entries import add_run_overrides
        add_run_overrides(config, list(overrides))
    validate_suite(config, str(path))
    return config


def validate_suite(config: SuiteConfig, source: str) -> None:
    """Check names against what exists; raises ConfigError naming the field and the allowed values."""
    import adaptive_mbrl as am
    from adaptive_mbrl.envs.scenarios import resolve_scenario
    from adaptive_mbrl.evaluation.entries import validate_entries
    from adaptive_mbrl.presets import list_presets

    robots, presets = am.list_robots(), list_presets() + list_presets("reference")
    for i, block in enumerate(config.robots):
        where = f"robots[{i}]"
        if block.robot not in robots:
            raise ConfigError(source, f"{where}.robot", f"unknown robot {block.robot!r}; allowed: {', '.join(robots)}")
        steps = config.episode_steps or am.load_robot(block.robot).episode_steps
        for j, name in enumerate(block.scenarios):
            try:  # shipped names and path/to/file.yaml:name alike, and every event inside the episodes
                resolve_scenario(block.robot, name).check_episode_steps(steps)
            except ValueError as err:
                raise ConfigError(source, f"{where}.scenarios[{j}]", str(err)) from None
        for j, entry in enumerate(block.controllers):
            if entry.preset is not None and entry.preset not in presets and not entry.preset.endswith((".yaml", ".yml")):
                raise ConfigError(source, f"{where}.controllers[{j}].preset",
                                  f"unknown preset {entry.preset!r}; allowed: {', '.join(presets)} or a .yaml path")
    validate_entries(config, source)


def resolve_checkpoint(spec: str, seed: int) -> Path:
    """``shipped:<robot>/<name>`` -> ``controllers/checkpoints/<robot>/<name>.pt``; else the path with
    ``{seed}`` filled in."""
    return paths.resolve_checkpoint(spec, seed)  # the one resolver, shared with the Python API and the CLI


def expand_jobs(config: SuiteConfig) -> tuple[list[EpisodeJob], list[str]]:
    """All episodes of the suite, in a fixed order, plus notes on skipped optional controllers.

    Raises:
        FileNotFoundError: a required controller's checkpoint does not exist (names the entry).
    """
    jobs: list[EpisodeJob] = []
    skipped: list[str] = []
    for block in config.robots:
        for entry in block.controllers:
            for seed in config.seeds:
                checkpoint = resolve_checkpoint(entry.checkpoint, seed)
                if not checkpoint.is_file():
                    if entry.optional:
                        skipped.append(f"skipped optional {entry.label} seed {seed} ({block.robot}): no checkpoint "
                                       f"at {str(checkpoint)!r} (from {entry.checkpoint!r})")
                        continue
                    raise FileNotFoundError(f"{block.robot}/{entry.label} seed {seed}: checkpoint {str(checkpoint)!r} "
                                            f"(from {entry.checkpoint!r}) does not exist; train it with `adaptive-mbrl "
                                            "train` or mark the controller optional: true")
                for scenario in block.scenarios:
                    for episode in range(block.episodes or config.episodes):
                        jobs.append(EpisodeJob(block.robot, block.backend, scenario, entry.label, str(checkpoint),
                                               entry.preset, seed, episode, config.episode_seed + episode,
                                               config.episode_steps, tuple(entry.set), entry.warmup_episodes))
    return jobs, list(dict.fromkeys(skipped))  # an entry shared by two blocks is noted once
