"""Shared by the benchmark scripts (not a benchmark itself: ``adaptive-mbrl list`` skips ``_`` names).

Imported as ``from _common import ...``: ``python benchmarks/<script>.py`` puts this folder first on
``sys.path``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable


SLOW_FINETUNING = "adapter.finetune_learning_rate=3e-5"
"""``pets_gains_de``'s online fine-tuning at a third of its rate (1e-4): the ``...+DE-slow`` methods of
adaptation.py and sample_efficiency.py (on the PE-GrBAL-trained ensemble no flipped episode where 1e-4 flipped
two; docs/results/probabilistic_ensembles.md)."""


def default_runs_dir() -> Path:
    """Where benchmark run folders live: ``$ADAPTIVE_MBRL_RUNS`` if set, else ``runs``."""
    return Path(os.environ.get("ADAPTIVE_MBRL_RUNS") or "runs")


NEUTRAL_ADDITIONS: dict[str, Any] = {"warmup_episodes": 0, "inner_loss": "model"}
"""Settings added after evaluation folders were keyed (a suite entry's ``warmup_episodes``, the adapter's
``inner_loss``), at the value that keeps the earlier behaviour: :func:`keyed_folder` leaves a key of this
name at this value out of the identity, wherever it sits, so adding a setting does not orphan every folder
(the setting at another value, or a changed default of an older one, still changes the key). Add each new
suite or preset setting here with its neutral value."""


def _without_neutral_additions(data: Any) -> Any:
    """``data`` (JSON-ready) without the :data:`NEUTRAL_ADDITIONS` at their neutral values, at any depth."""
    if isinstance(data, dict):
        return {k: _without_neutral_additions(v) for k, v in data.items()
                if not (k in NEUTRAL_ADDITIONS and v == NEUTRAL_ADDITIONS[k])}
    if isinstance(data, list):
        return [_without_neutral_additions(v) for v in data]
    return data


def planner_settings(overrides: list[str]) -> list[str]:
    """The ``planner.*`` items of ``SECTION.KEY=VALUE`` training settings: the planner that collected a
    run's data, which its evaluation episodes should plan with too."""
    return [o for o in overrides if o.split(".")[0] == "planner"]


def keyed_folder(root: Path, prefix: str, identity: dict[str, Any]) -> Path:
    """``root / <prefix>_<10 hex digits of identity>``: the evaluation run folder of one exact
    configuration (``identity``: JSON-ready data naming everything that decides the results, e.g. the
    suite, the presets' contents and the checkpoints' :func:`~adaptive_mbrl.evaluation.results.file_sha256`). Rerunning the same
    configuration finds its folder again (and :func:`~adaptive_mbrl.evaluation.run_suite` resumes it);
    any change gets a fresh one, except a later setting at its neutral value (:data:`NEUTRAL_ADDITIONS`)."""
    data = _without_neutral_additions(identity)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return Path(root) / f"{prefix}_{digest}"


def live_uprightness(env: Any) -> float:
    """The base's uprightness in ``env``'s current simulator state (the objective's ``uprightness``: cosine of
    the tilt, 1 upright, below 0 on its back); for ``run_episode``'s ``on_step`` callbacks of a robot whose
    objective has one."""
    sim_env = env.unwrapped
    return float(sim_env.objective.uprightness(sim_env.objective.observe(*sim_env.sim.state())))


def check_test_scenarios(robot: str, scenarios: list[str], episode_steps: int | None) -> None:
    """Fail before any training if an evaluation scenario is unknown for ``robot`` or has an event that
    could never fire within ``episode_steps`` (``None``: the robot's episode length); the message lists
    the allowed scenarios."""
    from adaptive_mbrl.envs.robot_spec import load_robot
    from adaptive_mbrl.envs.scenarios import resolve_scenario

    steps = episode_steps or load_robot(robot).episode_steps
    for name in scenarios:
        try:
            resolve_scenario(robot, name).check_episode_steps(steps)
        except ValueError as err:
            raise SystemExit(f"test scenario {name!r}: {err}") from None


def play_seeds_then_pool(suite: Any, folder: Path, seeds: list[int], build: Callable[[list[int]], tuple[Any, Path]],
                         executor: Any, has_episodes: Callable[[int], bool] = lambda seed: True) -> None:
    """Play ``suite`` (training seeds ``seeds``) into ``folder``, one seed at a time when there are several.

    Each seed's episodes are played in the folder a one-seed command keys for it (``build([seed])``: its
    suite and folder; seeds without ``has_episodes`` are skipped), then pooled into ``folder``: a study that
    adds a training seed, or a checkpoint of one seed, plays only that seed's episodes, and a one-seed
    command finds the episodes an all-seed one played. The folders are keyed by everything that decides
    the episodes, so only episodes of the same configuration are shared."""
    from adaptive_mbrl.evaluation import run_suite

    seed_folders = []
    if len(seeds) > 1:
        for seed in seeds:
            if not has_episodes(seed):
                continue
            seed_suite, seed_folder = build([seed])
            print(f"seed {seed}: {seed_folder}", flush=True)
            run_suite(seed_suite, seed_folder, executor, reuse=[folder])
            seed_folders.append(seed_folder)
    run_suite(suite, folder, executor, reuse=seed_folders)
