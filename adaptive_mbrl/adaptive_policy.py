"""Window + adapt + plan: the adaptive MPC step, for one environment or E environments in lockstep.

Environment ``e`` has its own adapter (all adapters wrap the same dynamics model) and its own window of
its latest M transitions (M = ``adapter.window``). :meth:`AdaptivePolicy.observe` appends a transition to
an environment's window and adapts that environment's adapter from the whole window (oldest first);
:meth:`AdaptivePolicy.act` plans for all E environments in one batched planner call, row ``e`` rolled out
with adapter ``e``.

Rollouts: a deterministic single network with ``planner.particles = 1`` is rolled out through the adapters'
``predict`` (one rollout per candidate). A probabilistic model, an ensemble, or ``planner.particles > 1`` is
rolled out by trajectory sampling (PETS) through the adapters' ``particle_step`` (``batch_particle_step`` for
E > 1), with the planner's ``particles`` and ``propagation`` (:func:`uses_particles`).

Two users: :class:`~adaptive_mbrl.control.AdaptiveController` (E = 1, one user's loop) and
meta-training's collection policy (:class:`~adaptive_mbrl.training.collect.AdaptiveCollectionPolicy`,
E parallel environments).
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

import torch
from torch import Tensor

from adaptive_mbrl.adaptation.base import Adapter
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.planning import PlannerConfig, TrajectoryScorer
from adaptive_mbrl.planning.base import Planner
from adaptive_mbrl.planning.rollout import ParticleStep, StepFn

Transition = tuple[Tensor, Tensor, Tensor]
"""``(obs [o], action [a], next_obs [o])``."""


def uses_particles(model: DynamicsModel, planner: PlannerConfig) -> bool:
    """Whether planning with ``model`` rolls out particles (trajectory sampling through a
    :class:`~adaptive_mbrl.planning.rollout.ParticleStep`) rather than one ``predict`` rollout per candidate:
    when ``planner.particles > 1``, the model is probabilistic, or it is an ensemble."""
    return planner.particles > 1 or model.probabilistic or model.ensemble_size > 1


def check_particle_support(adapters: Sequence[Adapter]) -> None:
    """Refuse adapters that cannot roll out particles, naming the adapter and what is missing.

    Raises:
        ValueError: one environment whose adapter does not override ``particle_step``, or several whose
            adapter class has no ``batch_particle_step``.
    """
    cls = type(adapters[0])
    kind = adapters[0].config.kind
    if len(adapters) == 1 and cls.particle_step is Adapter.particle_step:
        raise ValueError(f"adapter {kind!r} ({cls.__name__}) cannot plan with trajectory sampling (it has no "
                         "particle_step), which a probabilistic or ensemble model or planner.particles > 1 needs; "
                         "use a deterministic single network with planner.particles = 1, or adapter none / finetune")
    if len(adapters) > 1 and not hasattr(cls, "batch_particle_step"):
        raise ValueError(f"adapter {kind!r} ({cls.__name__}) cannot roll out particles for several environments at "
                         "once (no batch_particle_step), which a probabilistic or ensemble model or "
                         "planner.particles > 1 needs")


class AdaptivePolicy:
    """Adaptive MPC for E environments: per-environment windows and adapters, one planner.

    Args:
        adapters: one adapter per environment (E of them, around the same model). With E > 1 they must
            be meta adapters (their ``batch_predict`` rolls out E rows with E adapters at once).
        planner: plans ``[E, o] -> [E, a]``.
        reward_fn: batched reward ``(obs [..., o], action [..., a], next_obs [..., o]) -> [...]`` (torch).
        termination_fn: optional ``next_obs [..., o] -> bool [...]``.

    Raises:
        ValueError: no adapters; E > 1 adapters without ``batch_predict``; or a particle rollout
            (:func:`uses_particles`) with adapters that cannot do it (:func:`check_particle_support`).
    """

    def __init__(self, adapters: Sequence[Adapter], planner: Planner, reward_fn: Callable,
                 termination_fn: Callable | None = None) -> None:
        if not adapters:
            raise ValueError("AdaptivePolicy needs at least one adapter")
        if len(adapters) > 1 and not hasattr(type(adapters[0]), "batch_predict"):
            raise ValueError(f"adapter {type(adapters[0]).__name__} cannot predict for several environments at "
                             "once (no batch_predict); use one environment or a meta adapter (grbal, rebal)")
        self.particles = uses_particles(adapters[0].model, planner.config)
        if self.particles:
            check_particle_support(adapters)
        self.adapters, self.planner = list(adapters), planner
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        window = adapters[0].config.window
        self.windows: list[deque[Transition]] = [deque(maxlen=window) for _ in self.adapters]

    @property
    def n_envs(self) -> int:
        return len(self.adapters)

    def reset(self, envs: Sequence[int] | None = None) -> None:
        """Environments ``envs`` (default: all) start an episode: prior model, empty window, no warm start."""
        for e in range(self.n_envs) if envs is None else envs:
            self.adapters[e].reset()
            self.windows[e].clear()
        self.planner.reset(None if envs is None else list(envs))

    def observe(self, obs: Tensor, action: Tensor, next_obs: Tensor, envs: Sequence[int] | None = None) -> None:
        """Append row ``i`` of ``(obs [n, o], action [n, a], next_obs [n, o])`` to the window of environment
        ``envs[i]`` (default: row ``e`` to environment ``e``), then adapt each of those environments' adapter
        from its window ``[m, ...]`` (m <= M, oldest first)."""
        for i, e in enumerate(range(self.n_envs) if envs is None else envs):
            window = self.windows[e]
            window.append((obs[i], action[i], next_obs[i]))
            self.adapters[e].adapt(*(torch.stack(column) for column in zip(*window)))

    def act(self, obs: Tensor) -> Tensor:
        """Plan from ``obs`` [E, o] with each environment's adapted model; returns actions [E, a] in [-1, 1].

        One batched planner call for all E environments, under ``torch.inference_mode``."""
        scorer = self.scorer()
        with torch.inference_mode():
            return self.planner.plan(obs, scorer)

    def scorer(self) -> TrajectoryScorer:
        """The planner's score for this step: ``predict`` rollouts, or particle rollouts with the planner's
        ``particles`` / ``propagation`` (:func:`uses_particles`).

        The particles' generator is seeded from the planner's generator (one draw per call), so a seeded
        planner gives reproducible plans and every control step samples afresh."""
        if not self.particles:
            return TrajectoryScorer(self.step_fn(), self.reward_fn, self.termination_fn)
        return TrajectoryScorer.for_planner(self.particle_step(), self.reward_fn, self.termination_fn,
                                            self.planner.config, seed=self._particle_seed())

    def particle_step(self) -> ParticleStep:
        """``(state [E, N, P, o], act [E, N, a], members, generator) -> [E, N, P, o]`` with the adapters'
        current adaptation (row ``e`` through adapter ``e``)."""
        if self.n_envs == 1:
            return self.adapters[0].particle_step()
        return type(self.adapters[0]).batch_particle_step(self.adapters)

    def _particle_seed(self) -> int:
        """A seed for this step's particle sampling, drawn from the planner's generator."""
        generator = self.planner.generator
        with torch.inference_mode():
            draw = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
        return int(draw.item())

    def step_fn(self) -> StepFn:
        """``(obs [E, ..., o], act [E, ..., a]) -> [E, ..., o]`` with the adapters' current adaptation."""
        if self.n_envs == 1:
            return self.adapters[0].predict
        return type(self.adapters[0]).batch_predict(self.adapters)

    def predicts_finitely(self, obs: Tensor, action: Tensor) -> bool:
        """Whether ``action`` [E, a] is finite and each adapted model's prediction for it from ``obs`` [E, o]
        is too. (Planners never pick a candidate with a non-finite return, so a broken model would
        otherwise yield arbitrary actions.)"""
        if not torch.isfinite(action).all():
            return False
        with torch.inference_mode():
            return bool(torch.isfinite(self.step_fn()(obs, action)).all())
