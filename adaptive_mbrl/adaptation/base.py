"""The adapter interface, its settings, and the adapter that does nothing (MB).

An adapter owns the dynamics model a controller plans with. Every control step the controller hands it
the last ``M`` transitions (:meth:`Adapter.adapt`); the adapter updates its adapted parameters or state,
and :meth:`Adapter.predict` (a deterministic model) or :meth:`Adapter.particle_step` (trajectory sampling
through a probabilistic and / or ensemble model, PETS) is what the planner rolls out. :meth:`Adapter.reset`
restores the prior (the trained weights). Adapters:

- ``none``: MB, no adaptation.
- ``finetune``: MB+DE (dynamic evaluation), gradient steps on the last M transitions every step.
- ``grbal`` / ``rebal``: meta-trained gradient / recurrent adaptation.
- ``actuator_gains``: per-actuator gains estimated online (a motor fault is a rescaled action); any
  trained model, no meta-training.

:mod:`adaptive_mbrl.adaptation.registry` maps each kind to its class and builds adapters.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from adaptive_mbrl.config import bounded
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.planning.rollout import ParticleStep

AdapterKind = Literal["none", "finetune", "grbal", "rebal", "actuator_gains"]


@dataclass
class AdapterConfig:
    """Online adaptation settings.

    Attributes:
        kind: ``none`` (MB), ``finetune`` (MB+DE), ``grbal``, ``rebal`` or ``actuator_gains``.
        window: M, how many of the latest transitions adaptation looks at.
        steps: gradient steps per control step (finetune, grbal, actuator_gains).
        learning_rate: step size of those gradient steps.
        optimizer: ``sgd`` or ``adam`` (finetune only; GrBAL's inner step is plain SGD as meta-trained).
        reset_each_step: finetune only: restart every step from the trained weights (True) or keep
            accumulating updates through the episode (False, classic dynamic evaluation).
        learn_inner_lr: grbal only: Meta-SGD, a learned step size per parameter entry (initialised to
            ``learning_rate``, meta-trained with the prior and saved in the checkpoint's ``adapter_state``).
        encoder: rebal only: the recurrent cell that reads the window, ``gru`` or ``lstm``.
        encoder_hidden: rebal only: the recurrent state size (the paper's reference: LSTM 256).
        backtracking: grbal only: when the inner step raises the loss on the window it was computed from
            (an overshoot, e.g. on dynamics far outside training, where gradients are large), halve it up to
            this many times until it does not; the prior if none of them helps. 0 = off (as meta-trained).
        context_gate: rebal only: keep the encoded context only when it predicts the window's own
            transitions better than the empty-window (prior) context; otherwise plan with the prior
            context. Guards against an encoder that maps an unseen task onto a wrong training task.
        encoder_per_member: rebal only, for ensembles: one encoder (and context) per member, batched over
            the members, instead of one encoder whose context every member gets.
        finetune_steps: actuator_gains only: after the gains, this many Adam steps on a copy of the model's
            weights (its own training loss on the window, fed ``gains * action``; accumulated over the
            episode, restored at reset): dynamic evaluation on top of the gains. 0 = the trained weights.
        finetune_learning_rate: actuator_gains only: the step size of those weight updates.
        inner_loss: grbal only: the loss of the inner step (in meta-training and at run time): ``model``,
            the model's own training loss (Gaussian NLL for a probabilistic model, whose gradient grows
            with the inverse of the predicted variance), or ``mse``, the squared error of the predicted
            mean (the same for a deterministic model). The meta-loss on the future transitions is always
            the model's own.
    """

    kind: AdapterKind = "none"
    window: int = bounded(16, lo=1)
    steps: int = bounded(1, lo=0)
    learning_rate: float = bounded(1e-3, lo=0.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    reset_each_step: bool = False
    learn_inner_lr: bool = False
    encoder: Literal["gru", "lstm"] = "gru"
    encoder_hidden: int = bounded(64, lo=1)
    backtracking: int = bounded(0, lo=0)
    context_gate: bool = False
    encoder_per_member: bool = False
    finetune_steps: int = bounded(0, lo=0)
    finetune_learning_rate: float = bounded(1e-4, lo=0.0)
    inner_loss: Literal["model", "mse"] = "model"


class Adapter(abc.ABC):
    """Holds the prior model and the adapted version used for planning."""

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        self.model, self.config = model, config

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the episode: back to the prior."""

    @abc.abstractmethod
    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """Adapt to the latest transitions ``[m, o], [m, a], [m, o]`` (raw units, m <= window, oldest first)."""

    @abc.abstractmethod
    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        """Adapted one-step prediction ``[..., o], [..., a] -> [..., o]`` (raw units)."""

    def particle_step(self) -> ParticleStep:
        """The current (adapted) model as a :class:`~adaptive_mbrl.planning.rollout.ParticleStep` for
        trajectory sampling: ``(state [1, N, P, o], act [1, N, a], members, generator) -> [1, N, P, o]``.

        Several environments in lockstep use the classmethod ``batch_particle_step(adapters)`` of the
        adapter class instead (row ``e`` of ``B`` through adapter ``e``), where the class provides one.

        Raises:
            NotImplementedError: this adapter kind cannot plan with particles (no override).
        """
        raise NotImplementedError(
            f"the {self.config.kind!r} adapter ({type(self).__name__}) has no particle_step(), so it cannot plan "
            "with trajectory sampling (planner.particles > 1, or a probabilistic / ensemble model); use "
            "planner.particles = 1 with a deterministic single network, or an adapter that supports it")

    def state_dict(self) -> dict[str, Tensor]:
        """Learned parts of the adapter itself (not the model), e.g. Meta-SGD rates or a recurrent encoder.

        Saved as a checkpoint's ``adapter_state``; empty for adapters without learned parts.
        """
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what :meth:`state_dict` returned (e.g. from a checkpoint's ``adapter_state``)."""
        if state:
            raise ValueError(f"the {self.config.kind!r} adapter has no learned state, but got entries "
                             f"{sorted(state)[:5]}")


class NoAdaptation(Adapter):
    """MB: plan with the trained model as it is."""

    def reset(self) -> None:
        pass

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        pass

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.model.predict(obs, action)

    def particle_step(self) -> ParticleStep:
        """The trained model's members as particles (:class:`~adaptive_mbrl.models.EnsembleParticleStep`)."""
        return EnsembleParticleStep(self.model)


def window_loss(model: DynamicsModel, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The model's training loss on a window of transitions (scalar)."""
    with torch.enable_grad():
        return model.loss(obs, action, next_obs)
