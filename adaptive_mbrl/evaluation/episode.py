"""One evaluation episode: load any trained controller, run it on a scenario, return what happened.

Controllers are loaded with :func:`adaptive_mbrl.loading.load_controller` (re-exported here).

:func:`run_job` is what every executor (in-process, local worker processes, Ray tasks) calls; it depends
only on the :class:`~adaptive_mbrl.evaluation.suite.EpisodeJob` it is given (fresh controller, seeded
planner, seeded environment, one torch thread), so a suite gives the same numbers whatever the number
of workers or the executor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from adaptive_mbrl.control import Controller
from adaptive_mbrl.evaluation.suite import EpisodeJob
from adaptive_mbrl.loading import load_controller

__all__ = ["EpisodeRecord", "load_controller", "run_episode", "run_job"]


@dataclass
class EpisodeRecord:
    """What one episode produced.

    Attributes:
        total: the episode return (sum of rewards).
        rewards: reward per control step ``[T]``.
        change_steps: control steps at which the dynamics changed mid-episode (scheduled events).
        wall_s: seconds the episode took (planning + simulation).
    """

    total: float
    rewards: list[float]
    change_steps: list[int] = field(default_factory=list)
    wall_s: float = 0.0


def run_episode(controller: Controller, robot: str, scenario: str, seed: int, backend: str = "mujoco",
                print_every: int = 0, episode_steps: int | None = None,
                on_step: Callable[[Any, int], None] | None = None) -> EpisodeRecord:
    """One episode of ``controller`` on ``robot`` / ``scenario`` (environment seed ``seed``).

    Args:
        print_every: print a progress line every N steps and when the dynamics change (0 = silent).
        episode_steps: override the robot's episode length (control steps).
        on_step: called as ``on_step(env, 0)`` after the reset and ``on_step(env, k)`` after step ``k``
            (e.g. to render a frame of every state).
    """
    import adaptive_mbrl as am

    env = am.make(robot, scenario, backend=backend, seed=seed, episode_steps=episode_steps)
    start = time.perf_counter()
    record = EpisodeRecord(0.0, [])
    done = False
    try:
        obs, info = env.reset()
        controller.reset()
        if on_step is not None:
            on_step(env, 0)
        while not done:
            action = controller.act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            controller.observe(obs, action, next_obs)
            obs, done = next_obs, terminated or truncated
            record.rewards.append(float(reward))
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
    ``rewards``, ``change_steps`` and ``wall_s`` (plain data, JSON-ready)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in every worker: results independent of the executor
    try:
        controller = load_controller(job.checkpoint, job.preset, device=device, seed=job.seed, backend=job.backend,
                                     overrides=job.overrides, threads=1)
        record = run_episode(controller, job.robot, job.scenario, job.env_seed, job.backend,
                             episode_steps=job.episode_steps)
    finally:
        torch.set_num_threads(threads)
    rewards = np.asarray(record.rewards)
    return {**job.as_dict(), "key": job.key, "return": record.total, "steps": len(rewards),
            "rewards": [round(float(r), 6) for r in rewards], "change_steps": record.change_steps,
            "wall_s": round(record.wall_s, 3)}
