"""The gymnasium environment: one robot, one backend, one scenario of changing dynamics.

``step`` applies scheduled perturbations, simulates one control step, and scores the transition with
the robot's objective (the same function the planner calls on torch batches). The active task is in
``info["task"]``; it never enters the observation.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from adaptive_mbrl.envs.objectives import Objective, make_objective
from adaptive_mbrl.envs.perturbations import Perturbation, apply_all
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.scenarios import ScenarioSpec, Task, check_events
from adaptive_mbrl.envs.simulator import Simulator


class ResetNeeded(gym.error.ResetNeeded, RuntimeError):
    """``step()`` before ``reset()`` (gymnasium's ResetNeeded, and a RuntimeError)."""


def resolve_episode_steps(episode_steps: int | None, robot: RobotSpec) -> int:
    """``episode_steps`` checked (an integer >= 1), or the robot's default for None."""
    if episode_steps is None:
        return robot.episode_steps
    if isinstance(episode_steps, (bool, float)) or not isinstance(episode_steps, (int, np.integer)) \
            or episode_steps < 1:
        raise ValueError(f"episode_steps: {episode_steps!r} is out of range; allowed: an integer >= 1 (control "
                         f"steps), or None for the robot's default ({robot.episode_steps})")
    return int(episode_steps)


class RobotEnv(gym.Env):
    """A robot whose dynamics change, with the gymnasium API.

    Observation: float64 [obs_dim] (see the robot's objective). Action: float32 [action_dim] in [-1, 1],
    scaled by each actuator's gear. ``reset(options={"task": task})`` runs a given :class:`Task` instead
    of sampling one from the scenario (used to evaluate methods on identical tasks).

    ``info`` keys: ``task`` (the episode's :class:`Task`, frozen; ``.describe()`` gives plain data),
    ``task_id``, ``active_perturbations`` (tuple of the frozen perturbations in force now),
    ``perturbation_changed`` (True on the step where an event switched), ``step`` (control steps taken).

    ``episode_steps`` (control steps, an integer >= 1; None: the robot's default) must reach every event of
    the scenario, and ``step()`` before the first ``reset()`` raises :class:`ResetNeeded`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, robot: RobotSpec, scenario: ScenarioSpec, sim: Simulator,
                 render_mode: str | None = None, episode_steps: int | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None, 'rgb_array'")
        self.robot, self.scenario, self.sim = robot, scenario, sim
        self.render_mode = render_mode
        self.episode_steps = resolve_episode_steps(episode_steps, robot)
        scenario.check_episode_steps(self.episode_steps)
        scenario.check_for_sim(sim)
        self.objective: Objective = make_objective(robot.objective, sim.nq, sim.nv)
        obs_dim = self.objective.obs_dim(sim.nq, sim.nv)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (sim.nu,), np.float32)
        self._action_shape = (sim.nu,)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / sim.dt))}
        self.dt = sim.dt
        self._pending_seed: int | None = None
        self._task_rng: np.random.Generator | None = None
        self._task = Task()
        self._active: list[Perturbation] = []
        self._events: dict[int, Any] = {}
        self._obs = np.zeros(obs_dim)
        self._steps = 0
        self._info_task: dict[str, Any] = {}
        self._needs_reset = True

    # --- the planner's view of the objective ---------------------------------------------------------------
    def reward_fn(self, obs: Any, action: Any, next_obs: Any) -> Any:
        """The environment's reward on batches (numpy or torch): [..., o], [..., a], [..., o] -> [...]."""
        return self.objective.reward(obs, action, next_obs)

    def termination_fn(self, next_obs: Any) -> Any:
        """Whether next states end the episode (numpy or torch): [..., o] -> bool [...]."""
        return self.objective.terminated(next_obs)

    # --- gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None  # make()'s seed serves the first reset only; an explicit seed there wins
        super().reset(seed=seed)
        if seed is not None or self._task_rng is None:
            # Tasks are drawn from a stream of their own, so the initial state depends on the seed only and
            # not on the scenario's samplers: one seed gives the same start under every scenario and task.
            self._task_rng = np.random.default_rng(
                None if seed is None else np.random.SeedSequence(seed, spawn_key=(1,)))
        options = options or {}
        unknown = sorted(set(options) - {"task"})
        if unknown:
            raise ValueError(f"reset(options=...): unknown key {unknown[0]!r}; allowed: 'task'")
        task = options.get("task")
        if task is not None and not isinstance(task, Task):
            raise TypeError(f"reset(options={{'task': ...}}) needs an adaptive_mbrl Task, got {type(task).__name__}")
        if task is not None:
            check_events(task.events, self.episode_steps, "reset(options={'task': ...})")
        self._task = task if task is not None else self.scenario.sample(self._task_rng)
        self._events = {e.at_step: e for e in self._task.events}
        self._set_active(list(self._task.at_reset))
        noise = self.robot.init_noise
        qpos = self.objective.initial_qpos(self.sim.reference_qpos())
        qpos = qpos + self.np_random.uniform(-noise.qpos_uniform, noise.qpos_uniform, self.sim.nq)
        qvel = noise.qvel_normal * self.np_random.standard_normal(self.sim.nv)
        self.sim.set_state(qpos, qvel)
        self._steps = 0
        self._obs = self.objective.observe(*self.sim.state())
        self._needs_reset = False
        return self._obs.copy(), self._info(False)

    def step(self, action: np.ndarray):
        if self._needs_reset:
            raise ResetNeeded(f"{type(self).__name__}.step() was called before reset(): call env.reset() first "
                              "(the episode's task and initial state are set there)")
        changed = self._steps in self._events
        if changed:
            event = self._events[self._steps]
            self._set_active(list(event.perturbations) if event.replace
                             else self._active + list(event.perturbations))
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self._action_shape:
            raise ValueError(f"action has shape {action.shape}; expected {self._action_shape}")
        action = np.minimum(np.maximum(action, -1.0), 1.0)  # NaN passes through and is caught next
        squared_norm = np.dot(action, action)
        if squared_norm != squared_norm:
            raise ValueError(f"action contains NaN: {action}")
        self.sim.step(action)
        obs = self.objective.observe(*self.sim.state())
        reward = float(self.objective.reward(self._obs, action, obs))
        terminated = bool(self.objective.terminated(obs))
        self._obs = obs
        self._steps += 1
        truncated = self._steps >= self.episode_steps and not terminated
        return obs.copy(), reward, terminated, truncated, self._info(changed)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render()

    def close(self) -> None:
        self.sim.close()

    # --- task bookkeeping ------------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        """The task of the current episode."""
        return self._task

    @property
    def active_perturbations(self) -> list[Perturbation]:
        """Perturbations in force right now."""
        return list(self._active)

    def _set_active(self, perturbations: list[Perturbation]) -> None:
        apply_all(self.sim, self.robot, perturbations)
        self._active = perturbations
        # Immutable objects (a frozen Task, a tuple of frozen perturbations): every info can carry them
        # without copying, and no caller can change what another info holds. ``.describe()`` / ``describe(p)``
        # give plain data for logs.
        self._info_task = {"task": self._task, "task_id": self._task.task_id,
                           "active_perturbations": tuple(perturbations)}

    def _info(self, changed: bool) -> dict[str, Any]:
        return {**self._info_task, "perturbation_changed": changed, "step": self._steps}
