"""Meta-train PEARL on a train scenario's task distribution.

A fixed pool of ``train_tasks`` tasks is drawn from the scenario (task k is the one ``reset(seed=...)``
draws with the run's k-th task seed), as PEARL trains on a finite task set. Each task has an RL buffer
and a context buffer (its latest ``context_recent`` transitions from prior-z episodes). One iteration:

1. collect: for ``tasks_per_iteration`` tasks, ``prior_episodes`` with z from N(0, I) (RL + context
   buffers), then ``posterior_episodes`` with z from the posterior (RL buffer only). Within-episode mode
   re-infers z at every step from the current episode's transitions, as at test time; the original mode
   infers it once from the task's context buffer.
2. ``grad_steps`` gradient steps, each on ``meta_batch`` tasks (``batch_size`` RL transitions and a context
   of ``context_batch`` transitions per task; within-episode mode draws the context size in
   [min_context, context_batch] so the encoder also learns from the few transitions of an episode's start).

Environment steps and gradient steps are counted and reported separately.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_mbrl.baselines.controller import PEARLController
from adaptive_mbrl.baselines.pearl import PEARLAgent
from adaptive_mbrl.baselines.presets import PEARLPreset
from adaptive_mbrl.baselines.runs import load_trainer_state, open_run, save_trainer_state
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.envs import make
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.storage.checkpoint import save_checkpoint
from adaptive_mbrl.storage.runs import RunSettings, report_round, write_progress

FIELDS = ("obs", "action", "reward", "next_obs", "done")


class TaskBuffers:
    """Per-task transitions in growable float32 arrays: ``obs [n, o]``, ``action [n, a]``, ``reward [n]``,
    ``next_obs [n, o]``, ``done [n]``; ``context`` keeps the indices of each task's context transitions."""

    def __init__(self, n_tasks: int, obs_dim: int, action_dim: int) -> None:
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.data: list[dict[str, np.ndarray]] = [self._empty() for _ in range(n_tasks)]
        self.context: list[np.ndarray] = [np.zeros(0, np.int64) for _ in range(n_tasks)]

    def _empty(self) -> dict[str, np.ndarray]:
        return {"obs": np.zeros((0, self.obs_dim), np.float32), "action": np.zeros((0, self.action_dim), np.float32),
                "reward": np.zeros(0, np.float32), "next_obs": np.zeros((0, self.obs_dim), np.float32),
                "done": np.zeros(0, np.float32)}

    def add(self, task: int, episode: dict[str, np.ndarray], to_context: bool, context_recent: int) -> None:
        start = len(self.data[task]["reward"])
        self.data[task] = {k: np.concatenate((self.data[task][k], episode[k].astype(np.float32))) for k in FIELDS}
        if to_context:
            new = np.arange(start, start + len(episode["reward"]))
            self.context[task] = np.concatenate((self.context[task], new))[-context_recent:]

    def sample(self, tasks: list[int], n: int, rng: np.random.Generator, context: bool,
               device: torch.device) -> dict[str, torch.Tensor]:
        """``n`` transitions per task (with replacement) as tensors ``[T, n, ...]``."""
        rows = []
        for t in tasks:
            pool = self.context[t] if context else np.arange(len(self.data[t]["reward"]))
            rows.append(pool[rng.integers(0, len(pool), n)])
        return {k: torch.as_tensor(np.stack([self.data[t][k][r] for t, r in zip(tasks, rows)]), device=device)
                for k in FIELDS}

    def state(self) -> dict[str, Any]:
        return {"data": [{k: torch.from_numpy(v) for k, v in d.items()} for d in self.data],
                "context": [torch.from_numpy(c) for c in self.context]}

    def load(self, state: dict[str, Any]) -> None:
        self.data = [{k: v.cpu().numpy() for k, v in d.items()} for d in state["data"]]
        self.context = [c.cpu().numpy() for c in state["context"]]


def context_rows(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[T, N, 2o + a + 1]`` context from a sampled batch (same layout as :func:`pearl.make_context`)."""
    return torch.cat((batch["obs"], batch["action"], batch["reward"].unsqueeze(-1), batch["next_obs"]), -1)


def run_episode(ctrl: PEARLController, env, seed: int, task) -> dict[str, np.ndarray]:
    """One episode of ``task``; ``ctrl`` must already be reset. Returns the arrays of :data:`FIELDS` and
    ``return``."""
    obs, _ = env.reset(seed=seed, options={"task": task})
    rows: dict[str, list] = {k: [] for k in FIELDS}
    done = False
    while not done:
        action = ctrl.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        ctrl.observe(obs, action, next_obs)
        for key, value in zip(FIELDS, (obs, action, reward, next_obs, float(terminated))):
            rows[key].append(value)
        obs, done = next_obs, terminated or truncated
    out = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    out["return"] = np.float32(out["reward"].sum())
    return out


def train_pearl(preset: PEARLPreset, settings: RunSettings, run_dir: str | Path, resume: bool = False,
                progress: bool | None = None, overwrite: bool = False) -> Path:
    """Meta-train PEARL on ``settings.robot`` / ``settings.scenario``; returns the checkpoint (``model.pt``).

    Args:
        preset: networks, SAC and encoder settings; ``training`` sets the budget.
        settings: robot, train scenario, backend, seed, device.
        run_dir: the run folder (see :mod:`adaptive_mbrl.baselines.runs`).
        resume: continue the run in ``run_dir`` from its last finished iteration.
        progress: show a progress bar (default: when attached to a terminal).
        overwrite: replace an earlier run in ``run_dir`` (without it, or ``resume``, one is refused).
    """
    run_dir, device, cfg = Path(run_dir), torch.device(settings.device), preset.training
    doc = open_run(run_dir, preset, settings, resume, overwrite)
    actuation = load_robot(settings.robot).actuation.mode  # read once per run, recorded in every checkpoint
    torch.manual_seed(settings.seed)
    env = make(settings.robot, settings.scenario, backend=settings.backend, episode_steps=cfg.episode_steps or None)
    base = settings.seed * 1_000_000
    tasks = [env.reset(seed=base + k)[1]["task"] for k in range(cfg.train_tasks)]
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = PEARLAgent(obs_dim, act_dim, preset, device=device)
    buffers = TaskBuffers(cfg.train_tasks, obs_dim, act_dim)
    rng = np.random.default_rng(settings.seed)
    explore = PEARLController(agent, env.reward_fn, device=device, seed=settings.seed, deterministic=False,
                              adapt_within_episode=False)
    online = PEARLController(agent, env.reward_fn, device=device, seed=settings.seed + 1, deterministic=False)
    episode_seed = base + cfg.train_tasks

    def collect(task: int, episodes: int, posterior: bool) -> list[float]:
        nonlocal episode_seed
        returns = []
        for _ in range(episodes):
            if posterior and preset.adapt_within_episode:
                ctrl = online
                ctrl.reset()
            else:
                ctrl = explore
                ctrl.reset()
                if posterior and len(buffers.context[task]):
                    ctrl.set_task_context(context_rows(buffers.sample([task], cfg.context_batch, rng, True, device))[0])
            episode = run_episode(ctrl, env, episode_seed, tasks[task])
            episode_seed += 1
            buffers.add(task, episode, to_context=not posterior, context_recent=cfg.context_recent)
            returns.append(float(episode["return"]))
        return returns

    ckpt = run_dir / "model.pt"
    if doc is None:
        doc = {"iteration": 0, "env_steps": 0, "grad_steps": 0, "episode_seed": episode_seed, "wall_clock_s": 0.0,
               "history": []}
        for task in range(cfg.train_tasks):
            collect(task, cfg.initial_episodes, posterior=False)
        doc["env_steps"] = sum(len(d["reward"]) for d in buffers.data)
    else:
        state = load_trainer_state(run_dir, device)
        agent.load_state_dict(state["agent"])
        agent.load_optimizer_state(state["optim"])
        buffers.load(state["buffers"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        explore.generator.set_state(state["explore_rng"])
        online.generator.set_state(state["online_rng"])
        episode_seed = doc["episode_seed"]
    start = time.perf_counter() - doc["wall_clock_s"]
    bar = tqdm(range(doc["iteration"], cfg.iterations), desc="PEARL", unit="it", initial=doc["iteration"],
               total=cfg.iterations, disable=None if progress is None else not progress)
    for iteration in bar:
        prior_returns, post_returns = [], []
        for task in rng.choice(cfg.train_tasks, min(cfg.tasks_per_iteration, cfg.train_tasks), replace=False):
            prior_returns += collect(int(task), cfg.prior_episodes, posterior=False)
            post_returns += collect(int(task), cfg.posterior_episodes, posterior=True)
        stats: list[dict[str, float]] = []
        for _ in range(cfg.grad_steps):
            batch_tasks = list(rng.choice(cfg.train_tasks, cfg.meta_batch, replace=cfg.meta_batch > cfg.train_tasks))
            n_context = cfg.context_batch
            if preset.adapt_within_episode:
                n_context = int(rng.integers(min(cfg.min_context, cfg.context_batch), cfg.context_batch + 1))
            context = context_rows(buffers.sample(batch_tasks, n_context, rng, True, device))
            rl = buffers.sample(batch_tasks, cfg.batch_size, rng, False, device)
            stats.append(agent.update(context, rl["obs"], rl["action"], rl["reward"], rl["next_obs"], rl["done"]))
        doc["iteration"], doc["episode_seed"] = iteration + 1, episode_seed
        doc["env_steps"] = sum(len(d["reward"]) for d in buffers.data)
        doc["grad_steps"] += cfg.grad_steps
        doc["wall_clock_s"] = round(time.perf_counter() - start, 2)
        mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]} if stats else {}
        row = {"iteration": iteration + 1, "env_steps": doc["env_steps"], "grad_steps": doc["grad_steps"],
               "prior_return": float(np.mean(prior_returns)) if prior_returns else float("nan"),
               "posterior_return": float(np.mean(post_returns)) if post_returns else float("nan"),
               **mean, "wall_clock_s": doc["wall_clock_s"]}
        doc["history"].append(row)
        bar.set_postfix(ret=f"{row['posterior_return']:.1f}", env=doc["env_steps"], grad=doc["grad_steps"])
        save_checkpoint(ckpt, robot=settings.robot, obs_dim=obs_dim, action_dim=act_dim, preset=to_dict(preset),
                        model_state=agent.state_dict(), actuation=actuation,
                        meta={"method": "pearl", "iteration": iteration + 1, "env_steps": doc["env_steps"],
                              "grad_steps": doc["grad_steps"], "scenario": settings.scenario, "seed": settings.seed})
        save_trainer_state(run_dir, {"agent": agent.state_dict(), "optim": agent.optimizer_state(),
                                     "buffers": buffers.state(), "rng": rng.bit_generator.state,
                                     "torch_rng": torch.get_rng_state(), "explore_rng": explore.generator.get_state(),
                                     "online_rng": online.generator.get_state()})
        write_progress(run_dir, doc)
        report_round(doc, progress)
    bar.close()
    env.close()
    return ckpt
