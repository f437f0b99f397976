"""Scoring candidate action sequences by rolling a dynamics function forward, with trajectory sampling.

Shapes: ``B`` environments, ``N`` candidates, ``H`` horizon, ``P`` particles per candidate, ``K`` members a
particle can be assigned to, ``o`` / ``a`` observation / action sizes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from adaptive_mbrl.planning.config import PlannerConfig

Propagation = Literal["ts_inf", "ts_1", "mean"]
StepFn = Callable[[Tensor, Tensor], Tensor]
"""``step(obs [..., o], act [..., a]) -> next_obs [..., o]`` (e.g. ``DynamicsModel.predict``)."""


@runtime_checkable
class ParticleStep(Protocol):
    """A stochastic / ensemble step for trajectory sampling (e.g. ``models.EnsembleParticleStep(model)``).

    ``num_members`` is K. Calling it with ``state [B, N, P, o]`` (raw units), ``act [B, N, a]`` (shared by a
    candidate's particles), ``members`` and a ``torch.Generator`` returns ``next_state [B, N, P, o]``:

    - ``members`` long ``[P]`` (the same for every candidate) or ``[B, N, P]``: particle ``p`` is
      propagated by member ``members[..., p]`` (``0 <= members < K``), sampling its next state from that
      member's predictive distribution with ``generator`` (a deterministic member returns its prediction);
    - ``members`` None: the members' mean prediction, nothing sampled (``propagation: mean``).

    An implementation should batch all rows into as few model calls as it can (one per step).
    """

    num_members: int

    def __call__(self, state: Tensor, act: Tensor, members: Tensor | None,
                 generator: torch.Generator | None) -> Tensor: ...

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``reward(obs [..., o], act [..., a], next_obs [..., o]) -> [...]`` (e.g. ``RobotEnv.reward_fn``)."""
TerminationFn = Callable[[Tensor], Tensor]
"""``terminated(next_obs [..., o]) -> bool [...]`` (e.g. ``RobotEnv.termination_fn``)."""


class TrajectoryScorer:
    """Returns of candidate sequences under a (learned) step function: a planner's ``score``.

    Every horizon step is one batched call over all ``B * N`` candidates (times ``P`` particles). The
    reward of the step that enters a terminal state counts; later rewards do not (alive mask). A NaN
    return marks a diverged rollout (planners rank it last).

    Trajectory sampling (PETS): with a :class:`ParticleStep`, each candidate is rolled out as ``particles``
    particles and scored by the mean of their returns. ``propagation``:

    - ``ts_inf``: particle ``p`` keeps member ``p % K`` for the whole horizon (if ``P`` is not a multiple of
      ``K``, each candidate's assignment is rotated by a random offset drawn once per call);
    - ``ts_1``: every step, each candidate's particles get a fresh random member assignment (a random
      permutation of ``p % K`` plus a random offset, so each member still gets ``P / K`` of the particles
      when ``P`` is a multiple of ``K``);
    - ``mean``: the members' mean prediction, no sampling (needs ``particles = 1``).

    A plain :data:`StepFn` (e.g. ``model.predict``) is rolled out as before (``particles`` must be 1).
    With a single deterministic network, a ``ParticleStep`` and ``particles = 1`` give the same returns.

    Args:
        step_fn: next observation from observation and action (:data:`StepFn`), or a :class:`ParticleStep`.
        reward_fn: reward of a transition (units of the environment's reward).
        termination_fn: whether a next observation ends the episode; None = never.
        discount: per-step factor; the reward of step ``h`` (0-based) is weighted ``discount ** h``.
        particles: P, rollouts per candidate (a ``ParticleStep`` is needed for P > 1).
        propagation: ``ts_inf``, ``ts_1`` or ``mean`` (see above).
        seed: seeds the generator for member assignment and next-state sampling (None: non-deterministic).
    """

    def __init__(self, step_fn: StepFn | ParticleStep, reward_fn: RewardFn,
                 termination_fn: TerminationFn | None = None, discount: float = 1.0, *, particles: int = 1,
                 propagation: Propagation = "ts_inf", seed: int | None = None) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        if particles < 1:
            raise ValueError(f"particles must be >= 1, got {particles}")
        if propagation not in ("ts_inf", "ts_1", "mean"):
            raise ValueError(f"propagation must be one of 'ts_inf', 'ts_1', 'mean', got {propagation!r}")
        if propagation == "mean" and particles > 1:
            raise ValueError("propagation 'mean' samples nothing: use particles = 1 (or ts_inf / ts_1)")
        self.particle_step = isinstance(step_fn, ParticleStep)
        if particles > 1 and not self.particle_step:
            raise ValueError("particles > 1 needs a ParticleStep (e.g. adaptive_mbrl.models.EnsembleParticleStep"
                             "(model)), not a plain step function")
        self.step_fn, self.reward_fn, self.termination_fn = step_fn, reward_fn, termination_fn
        self.discount, self.particles, self.propagation, self.seed = discount, particles, propagation, seed
        self._generator: torch.Generator | None = None

    @classmethod
    def for_planner(cls, step_fn: StepFn | ParticleStep, reward_fn: RewardFn, termination_fn: TerminationFn | None,
                    config: PlannerConfig, discount: float = 1.0, seed: int | None = None) -> TrajectoryScorer:
        """A scorer with the planner config's ``particles`` and ``propagation``."""
        return cls(step_fn, reward_fn, termination_fn, discount, particles=config.particles,
                   propagation=config.propagation, seed=seed)

    def generator(self, device: torch.device) -> torch.Generator:
        """The scorer's generator on ``device`` (created and seeded on first use; kept across calls)."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            if self.seed is None:
                self._generator.seed()
            else:
                self._generator.manual_seed(self.seed)
        return self._generator

    def __call__(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Returns of each candidate.

        Args:
            obs: start observations ``[B, o]``.
            actions: candidates ``[B, N, H, a]``.

        Returns:
            ``[B, N]`` summed (discounted) rewards, in ``actions``' dtype (the mean over particles).
        """
        batch, samples, horizon, _ = actions.shape
        if obs.dim() != 2 or obs.shape[0] != batch:
            raise ValueError(f"obs must be [B, o] with B = {batch}, got {list(obs.shape)}")
        if self.particle_step:
            return self._particle_returns(obs, actions)
        state = obs.to(actions.dtype)[:, None, :].expand(batch, samples, obs.shape[-1])
        returns = actions.new_zeros(batch, samples)
        alive = torch.ones(batch, samples, dtype=torch.bool, device=actions.device)
        weight = 1.0
        for h in range(horizon):
            act = actions[:, :, h]
            next_state = self.step_fn(state, act)
            reward = self.reward_fn(state, act, next_state)
            returns = returns + torch.where(alive, weight * reward, 0.0)
            if self.termination_fn is not None:
                alive = alive & ~self.termination_fn(next_state)
            state, weight = next_state, weight * self.discount
        return returns

    def _particle_returns(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Mean particle return ``[B, N]``: one ``ParticleStep`` call on ``[B, N, P, o]`` per horizon step."""
        batch, samples, horizon, dims = actions.shape
        p, k = self.particles, self.step_fn.num_members
        generator = self.generator(actions.device)
        state = obs.to(actions.dtype)[:, None, None, :].expand(batch, samples, p, obs.shape[-1])
        returns = actions.new_zeros(batch, samples, p)
        alive = torch.ones(batch, samples, p, dtype=torch.bool, device=actions.device)
        members = None if self.propagation == "mean" else self._ts_inf_members(batch, samples, k, generator)
        weight = 1.0
        for h in range(horizon):
            act = actions[:, :, h]
            if self.propagation == "ts_1":
                members = self._ts_1_members(batch, samples, k, generator)
            next_state = self.step_fn(state, act, members, generator)
            reward = self.reward_fn(state, act[:, :, None, :].expand(batch, samples, p, dims), next_state)
            returns = returns + torch.where(alive, weight * reward, 0.0)
            if self.termination_fn is not None:
                alive = alive & ~self.termination_fn(next_state)
            state, weight = next_state, weight * self.discount
        return returns.mean(-1)

    def _ts_inf_members(self, batch: int, samples: int, k: int, generator: torch.Generator) -> Tensor:
        """``p % K`` as ``[P]``; rotated per candidate (``[B, N, P]``) when ``P`` is not a multiple of ``K``."""
        device = generator.device
        order = torch.arange(self.particles, device=device)
        if self.particles % k == 0:
            return order % k
        offset = torch.randint(k, (batch, samples, 1), generator=generator, device=device)
        return (order + offset) % k

    def _ts_1_members(self, batch: int, samples: int, k: int, generator: torch.Generator) -> Tensor:
        """A fresh assignment ``[B, N, P]``: a random permutation of ``p % K`` plus a random offset."""
        device = generator.device
        perm = torch.rand(batch, samples, self.particles, generator=generator, device=device).argsort(-1)
        offset = torch.randint(k, (batch, samples, 1), generator=generator, device=device)
        return (perm + offset) % k
