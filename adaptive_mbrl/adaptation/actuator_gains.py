"""Actuator-gain adaptation: estimate how much of each commanded action the robot's motors deliver.

A damaged motor is the most common fault of a legged robot: it delivers a fraction ``g`` of the commanded
torque (``g = 0`` disabled, ``0 < g < 1`` weakened, ``g < 0`` wired backwards). Such a fault is exactly a
rescaling of the action before the healthy dynamics, ``f(s, g * a)``, so instead of a learned context
this adapter estimates the ``a`` numbers ``g`` (one per actuator) from the latest transitions and plans
with the trained model fed ``g * a``. It needs no meta-training: any trained model (MB, PE-TS) can use it.

Every control step it takes ``config.steps`` Adam steps (``config.learning_rate``) on ``g``, minimising the
squared error of the normalised state change that the members predict (the planner's mean) on the last
M transitions, plus ``GAIN_PRIOR_WEIGHT * |g - 1|^2`` so that a window that says nothing about a motor
(e.g. its actions near zero) leaves it intact. ``g`` is kept in ``[GAIN_MIN, GAIN_MAX]`` and carries over
from one control step to the next; :meth:`ActuatorGainAdapter.reset` restores ``g = 1``.

With ``config.finetune_steps > 0`` it also fine-tunes a copy of the model's weights after the gains, each
control step, on the model's own loss over the same window fed ``g * a`` (dynamic evaluation, as the
``finetune`` adapter, accumulated through the episode and restored at reset): the gains take the motor
fault, the weight updates the model's remaining error on the states the robot is in now.

Its hypothesis class is actuator faults only: a payload, friction, mass or damping change is not a
rescaling of the actions, so there it can only approximate. Measured on half_cheetah
(docs/results/probabilistic_ensembles.md): the gains alone are level with the plain model on payload and
ice; with the weight updates the return on ice halves, so ``finetune_steps`` is for motor faults.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor

from adaptive_mbrl.adaptation.base import Adapter, AdapterConfig
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.planning.rollout import ParticleStep

GAIN_MIN, GAIN_MAX = -1.0, 1.0
"""Range of an estimated gain: from a motor wired backwards (-1) to an intact one (1)."""
GAIN_PRIOR_WEIGHT = 1e-3
"""Weight of ``|g - 1|^2`` against the window's mean squared error (normalised units)."""


class ScaledActionStep:
    """A :class:`~adaptive_mbrl.planning.rollout.ParticleStep` that feeds ``gains * act`` to another one.

    Args:
        inner: the model's particle step.
        gains: ``[a]`` (one robot) or ``[B, 1, a]`` (row ``b`` of the planner's batch with its own gains).
    """

    def __init__(self, inner: EnsembleParticleStep, gains: Tensor) -> None:
        self.inner, self.gains = inner, gains

    @property
    def num_members(self) -> int:
        return self.inner.num_members

    def __call__(self, state: Tensor, act: Tensor, members: Tensor | None,
                 generator: torch.Generator | None) -> Tensor:
        """``state [B, N, P, o]``, ``act [B, N, a]`` -> ``[B, N, P, o]``, the model driven by ``gains * act``."""
        return self.inner(state, act * self.gains, members, generator)


class ActuatorGainAdapter(Adapter):
    """Per-actuator gains ``g [a]`` estimated online; the model predicts with ``g * action``.

    Args:
        model: any trained dynamics model (single network or ensemble, deterministic or probabilistic).
        config: ``window`` (M), ``steps`` (Adam steps on the gains per control step), ``learning_rate``;
            ``finetune_steps`` / ``finetune_learning_rate`` (Adam steps on a copy of the weights; 0 = none).

    Attributes:
        gains: the current estimate ``[a]`` (unitless; 1 = intact).
        adapted: the model that predicts: ``model`` itself, or its fine-tuned copy with ``finetune_steps``.
    """

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        super().__init__(model, config)
        if model.context_dim:
            raise ValueError(f"adapter.kind 'actuator_gains' needs a model without a context input (model."
                             f"context_dim = 0), got context_dim = {model.context_dim}; use it with a pets or mb "
                             "model, or adapter.kind 'rebal' for a context model")
        self.gains: Tensor
        self._moments: tuple[Tensor, Tensor, int] | None
        self.adapted = model
        self._weights: torch.optim.Optimizer | None = None
        if config.finetune_steps:
            self.adapted = copy.deepcopy(model)
            self._prior = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self._weights = torch.optim.Adam([p for p in self.adapted.parameters() if p.requires_grad],
                                             lr=config.finetune_learning_rate)
        self.reset()

    def reset(self) -> None:
        """Back to intact motors, ``g = 1``, the trained weights, and fresh optimisers."""
        self.gains = torch.ones(self.model.act_dim, device=self.model.device)
        self._moments = None
        if self._weights is not None:
            self.adapted.load_state_dict(self._prior)
            self._weights.state.clear()

    def window_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, gains: Tensor) -> Tensor:
        """Mean squared error of the members' normalised state change on ``[m, ...]`` transitions when the
        model is fed ``gains * act``, plus the pull towards 1. Scalar, differentiable in ``gains``."""
        model = self.adapted
        target = model.delta_norm.normalize(next_obs - obs)
        mean = model(model.obs_norm.normalize(obs), model.act_norm.normalize(act * gains))  # [(E,) m, o]
        if model.ensemble_size > 1:
            mean = mean[model.drawable_members]
        return (mean - target).square().mean() + GAIN_PRIOR_WEIGHT * (gains - 1.0).square().sum()

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """``config.steps`` Adam steps on the gains from the window ``[m, o], [m, a], [m, o]``, then
        ``config.finetune_steps`` on the weights of :attr:`adapted`."""
        if obs.shape[0] == 0:
            return
        with torch.inference_mode(False), torch.enable_grad():
            obs, action, next_obs = obs.clone(), action.clone(), next_obs.clone()
            if self.config.steps:
                self._fit_gains(obs, action, next_obs)
            if self._weights is not None:
                self._fit_weights(obs, action * self.gains, next_obs)

    def _fit_gains(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        gains = self.gains.clone().requires_grad_(True)
        for _ in range(self.config.steps):
            (grad,) = torch.autograd.grad(self.window_loss(obs, action, next_obs, gains), gains)
            with torch.no_grad():
                gains -= self._adam_step(grad)
                gains.clamp_(GAIN_MIN, GAIN_MAX)
        self.gains = gains.detach()

    def _fit_weights(self, obs: Tensor, scaled_action: Tensor, next_obs: Tensor) -> None:
        """``finetune_steps`` Adam steps of the model's own training loss on the window (all members)."""
        assert self._weights is not None
        for _ in range(self.config.finetune_steps):
            self._weights.zero_grad(set_to_none=True)
            self.adapted.loss(obs, scaled_action, next_obs).backward()
            self._weights.step()

    def _adam_step(self, grad: Tensor, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Tensor:
        """Adam's update for ``grad [a]`` (its moments carried over the control steps of an episode)."""
        first, second, count = self._moments or (torch.zeros_like(grad), torch.zeros_like(grad), 0)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad.square()
        count += 1
        self._moments = (first, second, count)
        unbiased_first, unbiased_second = first / (1 - beta1 ** count), second / (1 - beta2 ** count)
        return self.config.learning_rate * unbiased_first / (unbiased_second.sqrt() + eps)

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.adapted.predict(obs, action * self.gains)

    def particle_step(self) -> ParticleStep:
        """The (fine-tuned) model's members as particles, fed ``gains * action``."""
        return ScaledActionStep(EnsembleParticleStep(self.adapted), self.gains)

    @classmethod
    def batch_particle_step(cls, adapters: Sequence["ActuatorGainAdapter"]) -> ParticleStep:
        """One step for ``B`` environments in lockstep: row ``b`` with ``adapters[b]``'s gains.

        Raises:
            ValueError: the adapters fine-tune their weights (``finetune_steps > 0``): each environment
                then has its own weights, which one batched call of the shared model cannot hold.
        """
        if any(a._weights is not None for a in adapters):
            raise ValueError("adapter.finetune_steps > 0 gives every environment its own fine-tuned weights, so "
                             "environments in lockstep cannot share one planning call; run one environment per "
                             "controller (e.g. training.parallel_envs=1) or adapter.finetune_steps=0")
        gains = torch.stack([a.gains for a in adapters])[:, None, :]  # [B, 1, a]
        return ScaledActionStep(EnsembleParticleStep(adapters[0].model), gains)
