"""Trained PEARL / RL² policies behind the :class:`~adaptive_mbrl.control.Controller` contract
(``reset / act / observe``, with the same input checks as AdaptiveController).

::

    ctrl = PolicyController.from_checkpoint("runs/pearl_cartpole/model.pt")
    obs, _ = env.reset(seed=0)
    ctrl.reset()                          # a new task (RL²: new trial; PEARL: context forgotten)
    action = ctrl.act(obs)
    ctrl.observe(obs, action, next_obs)   # the reward is recomputed with the robot's reward function

``observe`` gets no reward (the model-based controllers need none); both baselines need it in their
context / input, so the controllers recompute it with the robot's objective, which is exactly the
environment's reward function. ``reset(new_task=False)`` starts another episode of the same task: RL²
keeps its hidden state (the trial goes on), PEARL keeps the previous episodes' transitions as context
(its original between-episode protocol).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from adaptive_mbrl.baselines.pearl import PEARLAgent, make_context
from adaptive_mbrl.baselines.presets import PEARLPreset, baseline_from_dict, baseline_run_options
from adaptive_mbrl.baselines.rl2 import RL2Policy, rl2_input
from adaptive_mbrl.config import to_dict
from adaptive_mbrl.contract import check_action_bounds, real_vector
from adaptive_mbrl.envs.robot_spec import load_robot
from adaptive_mbrl.storage.checkpoint import check_actuation, load_checkpoint

RewardFn = Callable[[Any, Any, Any], Any]


class PolicyController:
    """Common part: tensors on ``device``, input checks, the reward of observed transitions.

    ``seed`` seeds the policy's sampling (PEARL's posterior samples, stochastic actions); ``reset()``
    (a new task) restores that seeded state, so a repeated episode gets the same actions.
    """

    def __init__(self, obs_dim: int, action_dim: int, reward_fn: RewardFn, device: torch.device | str | None,
                 seed: int | None) -> None:
        self.obs_dim, self.action_dim, self.reward_fn = obs_dim, action_dim, reward_fn
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator(device=self.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()
        self._seeded_state = self.generator.get_state()

    def _reseed(self) -> None:
        """Back to the random state the controller was built with."""
        self.generator.set_state(self._seeded_state)

    @staticmethod
    def from_checkpoint(checkpoint: str | Path, device: torch.device | str | None = None, seed: int | None = None,
                        deterministic: bool = True, backend: str | None = None, overrides: Sequence[str] = (),
                        **options: Any) -> "PEARLController | RL2Controller":
        """Load a PEARL or RL² checkpoint written by ``train_pearl`` / ``train_rl2``.

        ``options`` go to the controller (PEARL: ``adapt_within_episode``, ``context_window``, ``sample_z``);
        ``overrides`` are run-time settings ``KEY=VALUE`` as a suite entry's ``set:`` gives them (PEARL:
        ``adapt_within_episode=true|false``; RL²: none), checked by
        :func:`~adaptive_mbrl.baselines.presets.baseline_run_options` (ConfigError naming the key).
        """
        payload = load_checkpoint(checkpoint, device)
        check_actuation(payload, checkpoint, load_robot(payload["robot"]).actuation.mode)
        preset = baseline_from_dict(payload["preset"], source=str(checkpoint), path="preset")
        set_options = baseline_run_options(preset.kind, overrides)
        if set_options.keys() & options.keys():
            raise ValueError(f"{sorted(set_options.keys() & options.keys())} given both as overrides and as options")
        options = {**options, **set_options}
        from adaptive_mbrl.envs.objectives import robot_objective
        reward_fn = robot_objective(payload["robot"], backend).reward
        obs_dim, action_dim = payload["obs_dim"], payload["action_dim"]
        if isinstance(preset, PEARLPreset):
            agent = PEARLAgent(obs_dim, action_dim, preset, device=device)
            agent.load_state_dict(payload["model_state"])
            return PEARLController(agent, reward_fn, device=device, seed=seed, deterministic=deterministic, **options)
        policy = RL2Policy(obs_dim, action_dim, preset, device=device)
        policy.load_state_dict(payload["model_state"])
        return RL2Controller(policy, reward_fn, device=device, seed=seed, deterministic=deterministic, **options)

    def _tensor(self, value: np.ndarray, size: int, name: str) -> torch.Tensor:
        """``value`` checked as a 1-D finite real vector [size] (see :func:`~adaptive_mbrl.control.real_vector`)."""
        return torch.as_tensor(real_vector(value, size, name), device=self.device)

    def _transition(self, obs: np.ndarray, action: np.ndarray,
                    next_obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(obs [o], action [a], next_obs [o])`` checked; the action must lie in [-1, 1]."""
        action_np = real_vector(action, self.action_dim, "action")
        check_action_bounds(action_np)
        return (self._tensor(obs, self.obs_dim, "obs"), torch.as_tensor(action_np, device=self.device),
                self._tensor(next_obs, self.obs_dim, "next_obs"))

    def _reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.reward_fn(obs, action, next_obs), dtype=torch.float32, device=self.device)


class PEARLController(PolicyController):
    """A PEARL agent acting in a user's loop.

    Args:
        agent: the trained agent.
        reward_fn: batched reward ``(obs, action, next_obs) -> reward`` (the robot objective's).
        adapt_within_episode: re-infer z from the current episode's latest ``context_window`` transitions at
            every step (default: the preset's); False: z is fixed within an episode and inferred from the
            previous episodes of the task (prior at the first).
        context_window: within-episode context length (0 = whole episode); default: the preset's.
        sample_z: act with a posterior sample (default: the preset's) or the posterior mean.
        deterministic: act with the policy's mean action (evaluation) rather than a sample (exploration).
    """

    def __init__(self, agent: PEARLAgent, reward_fn: RewardFn, device: torch.device | str | None = None,
                 seed: int | None = None, deterministic: bool = True, adapt_within_episode: bool | None = None,
                 context_window: int | None = None, sample_z: bool | None = None) -> None:
        super().__init__(agent.obs_dim, agent.action_dim, reward_fn, device or agent.device, seed)
        p = agent.preset
        self.agent, self.preset, self.deterministic = agent.to(self.device), p, deterministic
        self.within = p.adapt_within_episode if adapt_within_episode is None else adapt_within_episode
        self.sample = p.sample_z if sample_z is None else sample_z
        window = p.context_window if context_window is None else context_window
        self.episode: deque[torch.Tensor] = deque(maxlen=window or None)
        self.task_context: list[torch.Tensor] = []
        self.z = torch.zeros(agent.latent_dim, device=self.device)
        self._stale = True

    def reset(self, new_task: bool = True) -> None:
        """Start an episode; ``new_task`` forgets the previous episodes' context and restores the seeded
        random state."""
        if new_task:
            self.task_context.clear()
            self._reseed()
        self.episode.clear()
        self._infer(torch.stack(self.task_context) if self.task_context and not self.within else None)

    def set_task_context(self, context: torch.Tensor) -> None:
        """Replace the between-episode context with ``context [N, 2o + a + 1]`` and infer z from it."""
        self.task_context = list(context.to(self.device))
        self._infer(context.to(self.device) if len(context) else None)

    def _infer(self, context: torch.Tensor | None) -> None:
        with torch.no_grad():
            mu, var = self.agent.posterior(None if context is None else context[None])
            self.z = (self.agent.sample_z(mu, var, self.generator) if self.sample else mu)[0]
        self._stale = False

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action [a] in (-1, 1) (float32) for observation ``obs`` [o]."""
        obs_t = self._tensor(obs, self.obs_dim, "obs")
        if self.within and self._stale:
            self._infer(torch.stack(tuple(self.episode)) if self.episode else None)
        action = self.agent.act(obs_t[None], self.z[None], self.deterministic, self.generator)[0]
        return action.cpu().numpy().astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Add transition ``(obs [o], action [a], reward, next_obs [o])`` to the context."""
        o, a, n = self._transition(obs, action, next_obs)
        row = make_context(o, a, self._reward(o, a, n), n)
        self.episode.append(row)
        self.task_context.append(row)
        self._stale = True

    def describe(self) -> dict[str, Any]:
        """The preset with the mode this controller runs in (``adapt_within_episode``, ``context_window``,
        ``sample_z`` as given at construction)."""
        return {**to_dict(self.preset), "adapt_within_episode": self.within, "sample_z": self.sample,
                "context_window": self.episode.maxlen or 0}


class RL2Controller(PolicyController):
    """An RL² policy acting in a user's loop; its GRU state is its adaptation.

    ``reset()`` starts a new trial (zero state); ``reset(new_task=False)`` starts the next episode of the
    same trial (state kept, done flag set for the first step).
    """

    def __init__(self, policy: RL2Policy, reward_fn: RewardFn, device: torch.device | str | None = None,
                 seed: int | None = None, deterministic: bool = True) -> None:
        super().__init__(policy.obs_dim, policy.action_dim, reward_fn, device or policy.device, seed)
        self.policy, self.preset, self.deterministic = policy.to(self.device), policy.preset, deterministic
        self.h = policy.initial_state(1)
        self.prev_action = torch.zeros(self.action_dim, device=self.device)
        self.prev_reward = torch.zeros((), device=self.device)
        self.prev_done = torch.zeros((), device=self.device)

    def reset(self, new_task: bool = True) -> None:
        """Start an episode; ``new_task`` (default) starts a new trial (and restores the seeded random state)."""
        if new_task:
            self._reseed()
            self.h = self.policy.initial_state(1)
            self.prev_action.zero_()
            self.prev_reward.zero_()
            self.prev_done.zero_()
        else:
            self.prev_done.fill_(1.0)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action [a] in [-1, 1] (float32); advances the GRU state by this step's input."""
        x = rl2_input(self._tensor(obs, self.obs_dim, "obs"), self.prev_action, self.prev_reward, self.prev_done)
        out = self.policy.step(x[None], self.h, self.deterministic, self.generator)
        self.h = out["h"]
        return out["action"][0].clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        """Remember the action and its reward as the next step's input."""
        o, a, n = self._transition(obs, action, next_obs)
        self.prev_action, self.prev_reward = a.clamp(-1.0, 1.0), self._reward(o, a, n)
        self.prev_done = torch.zeros((), device=self.device)

    def describe(self) -> dict[str, Any]:
        return to_dict(self.preset)
