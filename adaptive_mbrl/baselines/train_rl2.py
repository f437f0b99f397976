"""Train RL² with PPO on a train scenario's task distribution.

Each iteration collects ``trials_per_iteration`` trials on ``min(num_envs, trials_per_iteration)`` envs
stepped together (:func:`~adaptive_mbrl.baselines.rl2_trials.collect_trials`: one GRU forward per step
for all envs). A trial is ``episodes_per_trial`` episodes of one task: the first episode's
``reset(seed=...)`` draws the task from the scenario, the later ones replay it with
``reset(options={"task": task})``. The GRU state carries across the episodes of a trial and starts at
zero in each trial; returns and advantages run over the whole trial (episode ends inside a trial are not
value cut-offs, only the trial's end is). Data ``[T, B, ...]`` is padded to the longest trial (episodes
may terminate early) and masked; PPO's minibatches are sets of whole trials.

Every iteration ends with a checkpoint (weights, optimizer, RNG states, counters), so a run stopped at any
point and continued with ``resume=True`` loses at most the iteration in progress and reaches the same
counters (``env_steps``, ``grad_steps``, ``iteration``) and weights as an uninterrupted run. Wall-clock
time (``wall_clock_s``, split into ``collect_s`` and ``update_s``) is reported separately: it is summed
over the sessions of the run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_mbrl.baselines.ppo import clip_fraction, clipped_surrogate_loss, gae
from adaptive_mbrl.baselines.presets import RL2Preset
from adaptive_mbrl.baselines.rl2 import RL2Policy
from adaptive_mbrl.baselines.rl2_trials import collect_trials
from adaptive_mbrl.baselines.runs import load_trainer_state, open_run, save_trainer_state
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.envs import make
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.storage.checkpoint import save_checkpoint
from adaptive_mbrl.storage.runs import RunSettings, report_round, write_progress


def ppo_update(policy: RL2Policy, optim: torch.optim.Optimizer, data: dict[str, Any],
               generator: torch.Generator | None = None) -> dict[str, float]:
    """PPO epochs over ``data`` from :func:`collect_trials`; minibatches are sets of whole trials.

    Returns the mean losses and clip fraction, and ``grad_steps`` (optimizer steps taken: epochs times
    ``min(minibatches, trials)``).
    """
    p, cfg = policy.preset, policy.preset.training
    mask = data["mask"]
    with torch.no_grad():
        advantages, returns = gae(data["reward"] * p.reward_scale, data["value"] * mask, data["done"],
                                  torch.zeros_like(data["value"][0]), p.gamma, p.gae_lambda)
        mean, std = advantages[mask > 0].mean(), advantages[mask > 0].std().clamp(min=1e-8)
        advantages = (advantages - mean) / std
    b = mask.shape[1]
    n_mb = min(cfg.minibatches, b)
    stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clip_fraction": []}
    for _ in range(cfg.epochs):
        order = torch.randperm(b, generator=generator).to(mask.device)
        for idx in order.chunk(n_mb):
            m = mask[:, idx]
            mean_a, value, _ = policy(data["x"][:, idx], policy.initial_state(len(idx)))
            log_prob = policy.log_prob(mean_a, data["action"][:, idx])
            keep = m > 0
            pl = clipped_surrogate_loss(log_prob[keep], data["log_prob"][:, idx][keep], advantages[:, idx][keep], p.clip)
            vl = 0.5 * ((value - returns[:, idx]) ** 2)[keep].mean()
            loss = pl + p.value_coef * vl - p.entropy_coef * policy.entropy()
            optim.zero_grad()
            loss.backward()
            if p.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), p.max_grad_norm)
            optim.step()
            stats["policy_loss"].append(pl.item())
            stats["value_loss"].append(vl.item())
            stats["clip_fraction"].append(clip_fraction(log_prob[keep].detach(), data["log_prob"][:, idx][keep], p.clip))
    return {**{k: float(np.mean(v)) for k, v in stats.items()}, "grad_steps": len(stats["policy_loss"])}


def train_rl2(preset: RL2Preset, settings: RunSettings, run_dir: str | Path, resume: bool = False,
              progress: bool | None = None, overwrite: bool = False) -> Path:
    """Train RL² on ``settings.robot`` / ``settings.scenario``; returns the checkpoint path (``model.pt``).

    Args:
        preset: network and PPO settings; ``training`` sets the budget.
        settings: robot, train scenario, backend, seed, device.
        run_dir: the run folder (created; see :mod:`adaptive_mbrl.baselines.runs`).
        resume: continue the run in ``run_dir`` from its last finished iteration.
        progress: show a progress bar (default: when attached to a terminal).
        overwrite: replace an earlier run in ``run_dir`` (without it, or ``resume``, one is refused).
    """
    run_dir, device, cfg = Path(run_dir), torch.device(settings.device), preset.training
    doc = open_run(run_dir, preset, settings, resume, overwrite)
    actuation = load_robot(settings.robot).actuation.mode  # read once per run, recorded in every checkpoint
    torch.manual_seed(settings.seed)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    cpu_generator = torch.Generator().manual_seed(settings.seed + 1)
    envs = [make(settings.robot, settings.scenario, backend=settings.backend, episode_steps=cfg.episode_steps or None)
            for _ in range(min(cfg.num_envs, cfg.trials_per_iteration))]
    obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
    policy = RL2Policy(obs_dim, act_dim, preset, device=device)
    optim = torch.optim.Adam(policy.parameters(), lr=preset.learning_rate)
    ckpt = run_dir / "model.pt"
    if doc is None:
        doc = new_progress()
    else:
        state = load_trainer_state(run_dir, device)
        policy.load_state_dict(state["policy"])
        optim.load_state_dict(state["optim"])
        generator.set_state(state["generator"])
        cpu_generator.set_state(state["cpu_generator"])
        for key, value in new_progress().items():  # runs from before a counter existed
            doc.setdefault(key, value)
    session_start = time.perf_counter() - doc["wall_clock_s"]
    bar = tqdm(range(doc["iteration"], cfg.iterations), desc="RL2", unit="it", initial=doc["iteration"],
               total=cfg.iterations, disable=None if progress is None else not progress)
    for _ in bar:
        first = settings.seed * 1_000_000 + doc["trials_seeded"]
        seeds = list(range(first, first + cfg.trials_per_iteration))
        started = time.perf_counter()
        data = collect_trials(policy, envs, seeds, cfg.episodes_per_trial, generator)
        collected = time.perf_counter()
        stats = ppo_update(policy, optim, data, cpu_generator)
        updated = time.perf_counter()
        row = _count_iteration(doc, data, stats, collected - started, updated - collected, updated - session_start)
        row["log_std"] = policy.log_std.mean().item()
        bar.set_postfix(ret=f"{row['mean_return']:.1f}", steps=doc["env_steps"])
        save_checkpoint(ckpt, robot=settings.robot, obs_dim=obs_dim, action_dim=act_dim, preset=to_dict(preset),
                        model_state=policy.state_dict(), actuation=actuation,
                        meta={"method": "rl2", "iteration": doc["iteration"], "env_steps": doc["env_steps"],
                              "grad_steps": doc["grad_steps"], "scenario": settings.scenario, "seed": settings.seed})
        save_trainer_state(run_dir, {"policy": policy.state_dict(), "optim": optim.state_dict(),
                                     "generator": generator.get_state(), "cpu_generator": cpu_generator.get_state()})
        write_progress(run_dir, doc)
        report_round(doc, progress)
    bar.close()
    for env in envs:
        env.close()
    return ckpt


def new_progress() -> dict[str, Any]:
    """The progress document of a fresh run: counters (``iteration``, ``env_steps``, ``grad_steps``,
    ``trials_seeded``), wall-clock seconds summed over the run's sessions (``wall_clock_s``, of which
    ``collect_s`` collecting trials and ``update_s`` in PPO updates) and the per-iteration ``history``."""
    return {"iteration": 0, "env_steps": 0, "grad_steps": 0, "trials_seeded": 0, "wall_clock_s": 0.0,
            "collect_s": 0.0, "update_s": 0.0, "history": []}


def _count_iteration(doc: dict[str, Any], data: dict[str, Any], stats: dict[str, float], collect_s: float,
                     update_s: float, wall_clock_s: float) -> dict[str, Any]:
    """Advance ``doc``'s counters by one iteration and append its history row (returned, to be extended).

    ``collect_s`` / ``update_s``: this iteration's seconds of collection and PPO update; ``wall_clock_s``:
    the run's seconds so far (all sessions)."""
    steps, trials = int(data["mask"].sum()), data["mask"].shape[1]
    per_episode = np.array(data["episode_returns"], dtype=float)  # [B, episodes]
    doc["iteration"] += 1
    doc["trials_seeded"] += trials
    doc["env_steps"] += steps
    doc["grad_steps"] += int(stats.pop("grad_steps"))
    # Unrounded sums: rounding each addend would let collect_s + update_s drift above wall_clock_s.
    doc["collect_s"] += collect_s
    doc["update_s"] += update_s
    doc["wall_clock_s"] = wall_clock_s
    row = {"iteration": doc["iteration"], "env_steps": doc["env_steps"], "grad_steps": doc["grad_steps"],
           "mean_return": float(per_episode.mean()), "first_episode_return": float(per_episode[:, 0].mean()),
           "last_episode_return": float(per_episode[:, -1].mean()), **stats,
           "collect_steps_per_s": round(steps / max(collect_s, 1e-9), 1), "wall_clock_s": round(wall_clock_s, 2)}
    doc["history"].append(row)
    return row
