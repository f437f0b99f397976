"""One evaluation episode: load any trained controller, run it on a scenario, return what happened.

Controllers are loaded with :func:`adaptive_mbrl.loading.load_controller` (re-exported here).

:func:`run_job` is what every executor (in-process, local worker processes, Ray tasks) calls; it depends
only on the :class:`~adaptive_mbrl.evaluation.suite.EpisodeJob` it is given (fresh controller, seeded
planner, seeded environment, one torch thread), so a suite gives the same numbers whatever the number
of workers or the executor.

Warm-up (a suite entry's ``warmup_episodes``, :func:`run_warmup`): before the scored episode, the
controller plays unscored episodes of the same task (the one the scored episode's environment seed draws,
replayed with ``reset(options={"task": task})``, so with its mid-episode events too: a task is its whole
schedule of dynamics), each from its own initial state (environment seed :func:`warmup_seed`), with
``reset(new_task=False)`` between them and before the scored episode. The scored episode itself is
played in a fresh environment exactly as without warm-up (same task, same initial state): only the
controller's context differs.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from adaptive_mbrl.control import Controller
from adaptive_mbrl.evaluation.suite import EpisodeJob
from adaptive_mbrl.loading import load_controller

__all__ = ["EpisodeRecord", "load_controller", "run_episode", "run_job", "run_warmup", "warmup_seed"]


@dataclass
class EpisodeRecord:
    """What one episode produced.

    Attributes:
        total: the episode return (sum of rewards).
        rewards: reward per control step ``[T]``.
        change_steps: control steps at which the dynamics changed mid-episode (scheduled events).
        wall_s: seconds the scored episode took (planning + simulation), warm-up excluded.
        warmup_steps: control steps of the unscored warm-up episodes played before it (0: none).
        warmup_wall_s: seconds those warm-up episodes took.
    """

    total: float
    rewards: list[float]
    change_steps: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    warmup_steps: int = 0
    warmup_wall_s: float = 0.0


def warmup_seed(seed: int, warmup: int) -> int:
    """Environment seed of warm-up episode ``warmup`` before the scored episode of seed ``seed``: its own
    initial state (the task is given, see :func:`run_warmup`), never the scored episode's."""
    return int(np.random.SeedSequence([seed, warmup], spawn_key=(2,)).generate_state(1)[0])


def keeps_task_context(controller: Controller) -> bool:
    """Whether ``controller.reset`` takes ``new_task`` (PEARL / RL²: another episode of the same task)."""
    try:
        return "new_task" in inspect.signature(controller.reset).parameters
    except (TypeError, ValueError):
        return False


def _play(env, controller: Controller, obs: np.ndarray) -> Iterator[tuple[float, dict[str, Any]]]:
    """Step ``env`` with ``controller`` from ``obs`` (both already reset) to the episode's end; yields each
    step's ``(reward, info)``."""
    done = False
    while not done:
        action = controller.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        controller.observe(obs, action, next_obs)
        obs, done = next_obs, terminated or truncated
        yield float(reward), info


def run_warmup(controller: Controller, robot: str, scenario: str, seed: int, episodes: int,
               backend: str = "mujoco", episode_steps: int | None = None) -> int:
    """Play ``episodes`` unscored episodes of the task environment seed ``seed`` draws from ``scenario``
    (mid-episode events included), episode ``w`` from the initial state of seed ``warmup_seed(seed, w)``:
    ``controller.reset()`` before the first, ``reset(new_task=False)`` before the others. The caller
    then calls ``reset(new_task=False)`` before the scored episode. Returns the control steps played.

    Raises:
        ValueError: ``episodes`` is not an integer >= 0.
        TypeError: the controller's ``reset`` has no ``new_task`` (a model-based controller: every episode
            starts from its prior model, so earlier episodes cannot reach the scored one).
    """
    import adaptive_mbrl as am

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ValueError(f"warmup_episodes: {episodes!r} is out of range; allowed: an integer >= 0")
    if episodes == 0:
        return 0
    if not keeps_task_context(controller):
        raise TypeError(f"warmup_episodes: {type(controller).__name__}.reset() takes no new_task, so it cannot "
                        "keep a task's context across episodes; warm-up applies to PEARL / RL² controllers only")
    env = am.make(robot, scenario, backend=backend, seed=seed, episode_steps=episode_steps)
    steps = 0
    try:
        task = env.reset(seed=seed)[1]["task"]  # the scored episode's task (its environment draws it the same way)
        for w in range(episodes):
            obs, _ = env.reset(seed=warmup_seed(seed, w), options={"task": task})
            if w == 0:
                controller.reset()
            else:
                controller.reset(new_task=False)
            steps += sum(1 for _ in _play(env, controller, obs))
    finally:
        env.close()
    return steps


def run_episode(controller: Controller, robot: str, scenario: str, seed: int, backend: str = "mujoco",
                print_every: int = 0, episode_steps: int | None = None,
                on_step: Callable[[Any, int], None] | None = None, warmup_episodes: int = 0) -> EpisodeRecord:
    """One episode of ``controller`` on ``robot`` / ``scenario`` (environment seed ``seed``).

    Args:
        print_every: print a progress line every N steps and when the dynamics change (0 = silent).
        episode_steps: override the robot's episode length (control steps).
        on_step: called as ``on_step(env, 0)`` after the reset and ``on_step(env, k)`` after step ``k``
            (e.g. to render a frame of every state); the scored episode's steps only.
        warmup_episodes: unscored episodes of the same task played first (:func:`run_warmup`); the
            scored episode then starts with ``controller.reset(new_task=False)``.
    """
    import adaptive_mbrl as am

    record = EpisodeRecord(0.0, [])
    if warmup_episodes:
        start = time.perf_counter()
        record.warmup_steps = run_warmup(controller, robot, scenario, seed, warmup_episodes, backend, episode_steps)
        record.warmup_wall_s = time.perf_counter() - start
    env = am.make(robot, scenario, backend=backend, seed=seed, episode_steps=episode_steps)
    start = time.perf_counter()
    try:
        obs, info = env.reset()
        if warmup_episodes:
            controller.reset(new_task=False)  # another episode of the warm-up's task: its context kept
        else:
            controller.reset()
        if on_step is not None:
            on_step(env, 0)
        for reward, info in _play(env, controller, obs):
            record.rewards.append(reward)
            step = len(record.rewards)
            if info["perturbation_changed"]:
                record.change_steps.append(step - 1)
                if print_every:
                    print(f"  step {step - 1}: dynamics changed -> {info['active_perturbations']}")
            if print_every and step % print_every == 0:
                print(f"  step {step:4d}  reward {reward:7.3f}  return so far {sum(record.rewards):9.2f}")
            if on_step is not None:
                on_step(env, step)
    finally:
        env.close()
    record.total = float(sum(record.rewards))
    record.wall_s = time.perf_counter() - start
    return record


def run_job(job: EpisodeJob, device: str | None = None) -> dict[str, Any]:
    """Run one suite episode with one torch thread; returns the job's fields plus ``return``, ``steps``,
    ``rewards``, ``change_steps``, ``wall_s`` (the scored episode's), ``warmup_steps`` and ``warmup_wall_s``
    (plain data, JSON-ready)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in every worker: results independent of the executor
    try:
        controller = load_controller(job.checkpoint, job.preset, device=device, seed=job.seed, backend=job.backend,
                                     overrides=job.overrides, threads=1)
        record = run_episode(controller, job.robot, job.scenario, job.env_seed, job.backend,
                             episode_steps=job.episode_steps, warmup_episodes=job.warmup_episodes)
    finally:
        torch.set_num_threads(threads)
    rewards = np.asarray(record.rewards)
    return {**job.as_dict(), "key": job.key, "return": record.total, "steps": len(rewards),
            "rewards": [round(float(r), 6) for r in rewards], "change_steps": record.change_steps,
            "wall_s": round(record.wall_s, 3), "warmup_steps": record.warmup_steps,
            "warmup_wall_s": round(record.warmup_wall_s, 3)}
