"""RL² trials collected from a batch of environments: one GRU forward per control step for all of them.

A trial is ``episodes`` episodes of one task: its first ``reset(seed=...)`` draws the task from the env's
scenario, the later episodes replay it with ``reset(options={"task": task})``. ``E`` envs ("slots") run
trials side by side; a slot that finishes its trial starts the next trial not yet begun (a new seed, so a
new task) with a zero hidden state and a zero previous action / reward / done flag, so ``B`` trials can
run on ``E <= B`` envs and a slot whose episodes ended early does not wait for the others. Per step, the
inputs of all ``E`` slots go through the policy in one ``[1, E, o + a + 2]`` forward with the hidden
state ``[1, E, H]``; the action noise is one ``[E, a]`` draw (idle slots draw too, so the draws of a step
do not depend on how many trials are still running).

Everything a trial records is written into preallocated ``[T_max, B, ...]`` arrays at ``(step of the
trial, trial)``, so the result does not depend on which slot ran the trial: trial ``k`` of a collection
with ``E`` envs is the same data as trial ``k`` collected alone, up to the shared action-noise stream
(identical for a deterministic policy).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from adaptive_mbrl.baselines.rl2 import RL2Policy, rl2_input

RECORDED = ("x", "action", "log_prob", "value", "reward", "done", "mask")
"""The ``[T, B, ...]`` tensors of a collection (see :func:`collect_trials`)."""


class _Slots:
    """Per-env state of the trials in progress: which trial, its step, episode and previous step."""

    def __init__(self, n_envs: int, obs_dim: int, action_dim: int) -> None:
        self.obs = np.zeros((n_envs, obs_dim), np.float32)
        self.prev_action = np.zeros((n_envs, action_dim), np.float32)
        self.prev_reward = np.zeros(n_envs, np.float32)
        self.prev_done = np.zeros(n_envs, np.float32)
        self.trial = np.full(n_envs, -1)          # trial index run by the slot, -1 = idle
        self.step = np.zeros(n_envs, int)         # control step within the trial
        self.episode = np.zeros(n_envs, int)      # episode within the trial

    def start(self, i: int, trial: int, obs: np.ndarray) -> None:
        """Slot ``i`` begins trial ``trial`` at observation ``obs``: zero previous action, reward and flag."""
        self.obs[i], self.trial[i], self.step[i], self.episode[i] = obs, trial, 0, 0
        self.prev_action[i], self.prev_reward[i], self.prev_done[i] = 0.0, 0.0, 0.0

    def inputs(self) -> torch.Tensor:
        """The RL² input of every slot, ``[E, o + a + 2]`` (CPU)."""
        return rl2_input(*(torch.from_numpy(v) for v in (self.obs, self.prev_action, self.prev_reward,
                                                        self.prev_done)))


def max_trial_steps(envs: list, episodes: int) -> int:
    """The longest possible trial: ``episodes`` times the longest episode of ``envs`` (control steps)."""
    return episodes * max(env.unwrapped.episode_steps for env in envs)


@torch.no_grad()
def collect_trials(policy: RL2Policy, envs: list, seeds: list[int], episodes: int,
                   generator: torch.Generator | None = None) -> dict[str, Any]:
    """Run ``len(seeds)`` trials of ``episodes`` episodes on the ``len(envs)`` envs; trial ``k`` draws its
    task by ``reset(seed=seeds[k])``. Trials start in order as envs become free.

    Returns tensors on the policy's device, ``T`` = the longest trial, ``B = len(seeds)``:
    ``x [T, B, o + a + 2]`` (policy inputs), ``action [T, B, a]`` (unclipped samples), ``log_prob, value,
    reward, done, mask [T, B]`` (``done`` = 1 at the trial's last step, ``mask`` = 1 on its steps),
    ``episode_returns`` (per trial, its episodes' returns), ``tasks`` (per trial, the env's task) and
    ``trial_env`` (per trial, the index of the env that ran it).
    """
    if not envs or not seeds:
        raise ValueError(f"collect_trials needs at least one env and one trial seed; got {len(envs)} envs and "
                         f"{len(seeds)} seeds")
    if episodes < 1:
        raise ValueError(f"episodes: {episodes!r} is out of range; allowed: an integer >= 1")
    device, n_envs, n_trials = policy.device, len(envs), len(seeds)
    slots = _Slots(n_envs, policy.obs_dim, policy.action_dim)
    t_max = max_trial_steps(envs, episodes)
    buf = {"x": np.zeros((t_max, n_trials, policy.input_dim), np.float32),
           "action": np.zeros((t_max, n_trials, policy.action_dim), np.float32),
           **{k: np.zeros((t_max, n_trials), np.float32) for k in RECORDED[2:]}}
    returns: list[list[float]] = [[] for _ in range(n_trials)]
    tasks: list[Any] = [None] * n_trials
    trial_env = [-1] * n_trials
    h = policy.initial_state(n_envs)
    started = 0

    def start(i: int) -> None:
        nonlocal started
        obs, _ = envs[i].reset(seed=seeds[started])
        slots.start(i, started, obs)
        tasks[started], trial_env[started] = envs[i].task, i
        returns[started].append(0.0)
        h[:, i] = 0.0  # a new trial: a new task, the memory starts empty
        started += 1

    for i in range(min(n_envs, n_trials)):
        start(i)
    while (slots.trial >= 0).any():
        x = slots.inputs()
        out = policy.step(x.to(device), h, generator=generator)
        h = out["h"]
        action, log_prob, value = (out[k].cpu().numpy() for k in ("action", "log_prob", "value"))
        clipped = np.clip(action, -1.0, 1.0)
        active = np.flatnonzero(slots.trial >= 0)
        at = (slots.step[active], slots.trial[active])
        buf["x"][at], buf["action"][at] = x.numpy()[active], action[active]
        buf["log_prob"][at], buf["value"][at], buf["mask"][at] = log_prob[active], value[active], 1.0
        for i in active:
            _step_slot(i, envs[i], clipped[i], slots, buf, returns, tasks, episodes)
            if slots.trial[i] < 0 and started < n_trials:
                start(i)
    length = int(buf["mask"].sum(0).max())
    data: dict[str, Any] = {k: torch.as_tensor(v[:length], device=device) for k, v in buf.items()}
    data.update(episode_returns=returns, tasks=tasks, trial_env=trial_env)
    return data


def _step_slot(i: int, env, action: np.ndarray, slots: _Slots, buf: dict[str, np.ndarray],
               returns: list[list[float]], tasks: list[Any], episodes: int) -> None:
    """Step env ``i`` with its (clipped) action, record reward / done, and move to the next episode or end
    the trial (the slot becomes idle: ``trial = -1``)."""
    k, t = slots.trial[i], slots.step[i]
    next_obs, reward, terminated, truncated, _ = env.step(action)
    ended = terminated or truncated
    buf["reward"][t, k] = reward
    returns[k][-1] += float(reward)
    slots.prev_action[i], slots.prev_reward[i], slots.prev_done[i] = action, reward, float(ended)
    slots.step[i] += 1
    if ended:
        slots.episode[i] += 1
        if slots.episode[i] == episodes:
            buf["done"][t, k] = 1.0
            slots.trial[i] = -1
            return
        returns[k].append(0.0)
        next_obs, _ = env.reset(options={"task": tasks[k]})
    slots.obs[i] = next_obs
