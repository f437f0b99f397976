"""Data collection from several environments stepped in lockstep.

A policy maps a batch of observations ``[E, o]`` to actions ``[E, a]``, so an MPC planner plans for all
E environments in one batched call (small networks are dominated by per-call overhead otherwise):
uniform random actions, MPC without adaptation (training MB models), or adaptive MPC
(:class:`AdaptiveCollectionPolicy`, meta-training GrBAL / ReBAL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_mbrl.adaptive_policy import AdaptivePolicy
from adaptive_mbrl.envs import make
from adaptive_mbrl.planning.score_terms import with_upright_cost
from adaptive_mbrl.training.buffer import TransitionBuffer

BatchPolicy = Callable[[np.ndarray], np.ndarray]


@dataclass
class CollectStats:
    """What a collection run produced: finished episodes' returns and lengths, steps taken."""

    steps: int = 0
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


class VectorCollector:
    """E environments of one robot and scenario, reset with seeds ``seed, seed + 1, ...``."""

    def __init__(self, robot: str, scenario: str = "nominal", n_envs: int = 1, backend: str = "mujoco",
                 seed: int = 0, episode_steps: int | None = None) -> None:
        self.envs = [make(robot, scenario, backend=backend, episode_steps=episode_steps or None)
                     for _ in range(n_envs)]
        self._seeds = iter(range(seed, seed + 10**9, 1))
        self.obs = np.stack([env.reset(seed=next(self._seeds))[0] for env in self.envs])
        self._episode = [-1] * n_envs
        self._step = [0] * n_envs
        self._return = [0.0] * n_envs
        self._changes = [0] * n_envs

    @property
    def reward_fn(self) -> Callable:
        return self.envs[0].reward_fn

    @property
    def termination_fn(self) -> Callable:
        return self.envs[0].termination_fn

    @property
    def upright_fn(self) -> Callable | None:
        """Cosine of the base's tilt ``[..., o] -> [...]`` (the robot objective's), None where it has none."""
        return getattr(self.envs[0].objective, "uprightness", None)

    def planning_reward(self, upright_cost: float) -> Callable:
        """The reward the collection's planner scores with: the environment's, minus the posture term of
        ``planner.upright_cost`` where the robot has a base orientation
        (:func:`~adaptive_mbrl.planning.score_terms.with_upright_cost`)."""
        return with_upright_cost(self.reward_fn, self.upright_fn, upright_cost)

    def run(self, policy: BatchPolicy, steps: int, buffer: TransitionBuffer, progress: bool | None = None,
            description: str = "collect", on_reset: Callable[[int], None] | None = None) -> CollectStats:
        """Step every env with ``policy`` until ``steps`` transitions (in total) are in ``buffer``.

        ``on_reset(i)`` is called when env ``i`` starts a new episode (e.g. to clear per-env planner state).
        """
        stats = CollectStats()
        bar = tqdm(total=steps, desc=description, disable=None if progress is None else not progress,
                   leave=False, unit="step")  # None: only on a terminal
        while stats.steps < steps:
            actions = np.asarray(policy(self.obs), dtype=np.float32)
            for i, env in enumerate(self.envs):
                self._record(i, env, actions[i], buffer, stats, on_reset)
            bar.update(len(self.envs))
            bar.set_postfix(episodes=len(stats.returns),
                            last_return=f"{stats.returns[-1]:.1f}" if stats.returns else "-")
        bar.close()
        return stats

    def _record(self, i: int, env, action: np.ndarray, buffer: TransitionBuffer, stats: CollectStats,
                on_reset: Callable[[int], None] | None) -> None:
        if self._episode[i] < 0:
            self._episode[i] = buffer.new_episode()
        next_obs, reward, terminated, truncated, info = env.step(action)
        self._changes[i] += int(info["perturbation_changed"])
        buffer.add(self.obs[i], action, next_obs, reward, terminated, self._episode[i], self._step[i],
                   task=f"{info['task_id']}/{self._changes[i]}")
        self._step[i] += 1
        self._return[i] += reward
        stats.steps += 1
        if terminated or truncated:
            stats.returns.append(self._return[i])
            stats.lengths.append(self._step[i])
            next_obs, _ = env.reset(seed=next(self._seeds))
            self._episode[i], self._step[i], self._return[i], self._changes[i] = -1, 0, 0.0, 0
            if on_reset is not None:
                on_reset(i)
        self.obs[i] = next_obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def random_policy(action_dim: int, rng: np.random.Generator) -> BatchPolicy:
    """Uniform random actions in [-1, 1]: ``[E, o] -> [E, a]``."""
    return lambda obs: rng.uniform(-1.0, 1.0, (len(obs), action_dim))


def planner_policy(planner, scorer, device: torch.device | str | None = None) -> BatchPolicy:
    """MPC without adaptation for a batch of envs: one batched ``planner.plan`` per control step."""
    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
            return planner.plan(obs_t, scorer).cpu().numpy()
    return policy


class AdaptiveCollectionPolicy:
    """Adaptive MPC for E environments in lockstep, as a collection policy ``[E, o] -> [E, a]``.

    The batched form of :class:`~adaptive_mbrl.control.AdaptiveController`: the same
    :class:`~adaptive_mbrl.adaptive_policy.AdaptivePolicy` (per-env windows and adapters, one planner
    call for all E). A collector passes only observations, so the transition of env ``e`` is completed
    at the next call: ``(s_{t-1}, a_{t-1}, s_t)`` is observed (its window adapted) before planning from
    ``s_t``. Pass :meth:`on_reset` to :meth:`VectorCollector.run` as ``on_reset``.

    Args:
        policy: the adaptive policy, one adapter per environment.
        device: where observations are put for planning.
    """

    def __init__(self, policy: AdaptivePolicy, device: torch.device | str | None = None) -> None:
        self.policy, self.device = policy, device
        self.previous: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * policy.n_envs

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions [E, a] for observations ``obs`` [E, o] (after adapting from the step that led there)."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        ready = [e for e, previous in enumerate(self.previous) if previous is not None]
        if ready:
            before, actions = (torch.stack(column) for column in zip(*(self.previous[e] for e in ready)))
            self.policy.observe(before, actions, obs_t[ready], envs=ready)
        actions = self.policy.act(obs_t)
        self.previous = [(obs_t[e], actions[e]) for e in range(self.policy.n_envs)]
        return actions.cpu().numpy()

    def on_reset(self, env: int) -> None:
        """Env ``env`` starts a new episode: prior model, empty window, no warm start."""
        self.policy.reset([env])
        self.previous[env] = None
