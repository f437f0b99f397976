"""Train RL² with PPO on a train scenario's task distribution.

Each iteration runs ``trials_per_iteration`` trials in lockstep. A trial is ``episodes_per_trial`` episodes
of one task: the first episode's ``reset(seed=...)`` draws the task from the scenario, the later ones
replay it with ``reset(options={"task": task})``. The GRU state carries across the episodes of a trial and
starts at zero in each trial; returns and advantages run over the whole trial (episode ends inside a trial
are not value cut-offs, only the trial's end is). Data ``[T, B, ...]`` is padded to the longest trial
(episodes may terminate early) and masked.
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
from adaptive_mbrl.baselines.rl2 import RL2Policy, rl2_input
from adaptive_mbrl.baselines.runs import load_trainer_state, open_run, save_trainer_state
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.envs import make
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.storage.checkpoint import save_checkpoint
from adaptive_mbrl.storage.runs import RunSettings, report_round, write_progress


def collect_trials(policy: RL2Policy, envs: list, seeds: list[int], episodes: int,
                   generator: torch.Generator | None = None) -> dict[str, Any]:
    """Run one trial per env (``episodes`` episodes of the task drawn by ``reset(seed=seeds[i])``).

    Returns tensors on the policy's device, ``T`` = the longest trial: ``x [T, B, o + a + 2]`` (policy
    inputs), ``action [T, B, a]``, ``log_prob, value, reward, done, mask [T, B]`` (``done`` = 1 at the
    trial's last step) and ``episode_returns`` (list per env of its episodes' returns).
    """
    device, b = policy.device, len(envs)
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])
    tasks = [env.task for env in envs]
    prev_a = np.zeros((b, policy.action_dim), np.float32)
    prev_r, prev_d = np.zeros(b, np.float32), np.zeros(b, np.float32)
    episode, active = np.zeros(b, int), np.ones(b, bool)
    returns: list[list[float]] = [[0.0] for _ in range(b)]
    rows: dict[str, list] = {k: [] for k in ("x", "action", "log_prob", "value", "reward", "done", "mask")}
    h = policy.initial_state(b)
    while active.any():
        x = rl2_input(*(torch.as_tensor(v, dtype=torch.float32, device=device) for v in (obs, prev_a, prev_r, prev_d)))
        out = policy.step(x, h, generator=generator)
        h = out["h"]
        actions = out["action"].cpu().numpy()
        reward, done = np.zeros(b, np.float32), np.zeros(b, np.float32)
        mask = active.astype(np.float32)
        for i, env in enumerate(envs):
            if not active[i]:
                continue
            clipped = np.clip(actions[i], -1.0, 1.0).astype(np.float32)
            next_obs, r, terminated, truncated, _ = env.step(clipped)
            reward[i], returns[i][-1] = r, returns[i][-1] + r
            prev_a[i], prev_r[i], prev_d[i] = clipped, r, float(terminated or truncated)
            if terminated or truncated:
                episode[i] += 1
                if episode[i] == episodes:
                    active[i], done[i] = False, 1.0
                else:
                    returns[i].append(0.0)
                    next_obs, _ = env.reset(options={"task": tasks[i]})
            obs[i] = next_obs
        for key, value in (("x", x), ("action", out["action"]), ("log_prob", out["log_prob"]), ("value", out["value"]),
                           ("reward", reward), ("done", done), ("mask", mask)):
            rows[key].append(torch.as_tensor(value, dtype=torch.float32, device=device))
    data = {k: torch.stack(v) for k, v in rows.items()}
    data["episode_returns"] = returns
    return data


def ppo_update(policy: RL2Policy, optim: torch.optim.Optimizer, data: dict[str, Any],
               generator: torch.Generator | None = None) -> dict[str, float]:
    """PPO epochs over ``data`` from :func:`collect_trials`; minibatches are sets of whole trials."""
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
    return {k: float(np.mean(v)) for k, v in stats.items()}


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
            for _ in range(cfg.trials_per_iteration)]
    obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
    policy = RL2Policy(obs_dim, act_dim, preset, device=device)
    optim = torch.optim.Adam(policy.parameters(), lr=preset.learning_rate)
    ckpt = run_dir / "model.pt"
    if doc is None:
        doc = {"iteration": 0, "env_steps": 0, "trials_seeded": 0, "wall_clock_s": 0.0, "history": []}
    else:
        state = load_trainer_state(run_dir, device)
        policy.load_state_dict(state["policy"])
        optim.load_state_dict(state["optim"])
        generator.set_state(state["generator"])
        cpu_generator.set_state(state["cpu_generator"])
    start = time.perf_counter() - doc["wall_clock_s"]
    bar = tqdm(range(doc["iteration"], cfg.iterations), desc="RL2", unit="it", initial=doc["iteration"],
               total=cfg.iterations, disable=None if progress is None else not progress)
    for iteration in bar:
        first = settings.seed * 1_000_000 + doc["trials_seeded"]
        data = collect_trials(policy, envs, list(range(first, first + len(envs))), cfg.episodes_per_trial, generator)
        stats = ppo_update(policy, optim, data, cpu_generator)
        steps = int(data["mask"].sum())
        per_episode = np.array([r for r in data["episode_returns"]], dtype=float)  # [B, episodes]
        doc["iteration"], doc["trials_seeded"] = iteration + 1, doc["trials_seeded"] + len(envs)
        doc["env_steps"] += steps
        doc["wall_clock_s"] = round(time.perf_counter() - start, 2)
        row = {"iteration": iteration + 1, "env_steps": doc["env_steps"], "mean_return": float(per_episode.mean()),
               "first_episode_return": float(per_episode[:, 0].mean()),
               "last_episode_return": float(per_episode[:, -1].mean()), **stats,
               "log_std": policy.log_std.mean().item(), "wall_clock_s": doc["wall_clock_s"]}
        doc["history"].append(row)
        bar.set_postfix(ret=f"{row['mean_return']:.1f}", steps=doc["env_steps"])
        save_checkpoint(ckpt, robot=settings.robot, obs_dim=obs_dim, action_dim=act_dim, preset=to_dict(preset),
                        model_state=policy.state_dict(), actuation=actuation,
                        meta={"method": "rl2", "iteration": iteration + 1, "env_steps": doc["env_steps"],
                              "scenario": settings.scenario, "seed": settings.seed})
        save_trainer_state(run_dir, {"policy": policy.state_dict(), "optim": optim.state_dict(),
                                     "generator": generator.get_state(), "cpu_generator": cpu_generator.get_state()})
        write_progress(run_dir, doc)
        report_round(doc, progress)
    bar.close()
    for env in envs:
        env.close()
    return ckpt
