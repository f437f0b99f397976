"""What the meta-training loop needs from a meta-learned adapter (GrBAL, ReBAL) on top of :class:`Adapter`."""
from __future__ import annotations

import abc
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from adaptive_mbrl.adaptation.base import Adapter
from adaptive_mbrl.planning.rollout import ParticleStep

StepFn = Callable[[Tensor, Tensor], Tensor]


class MetaAdapter(Adapter):
    """An adapter whose prior (the model) and learned parts (:attr:`learned`) are meta-trained together.

    The prior is the model's *current* parameters: :meth:`reset` reads them from the model, so the
    adapter follows a model that is being meta-trained. :attr:`learned` is an ``nn.Module`` (possibly
    without parameters) whose ``state_dict`` is the adapter's checkpoint state.
    """

    learned: nn.Module

    @abc.abstractmethod
    def meta_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, first_order: bool = False,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Meta-loss on segments ``[B, M+K, ...]`` (raw units); returns (differentiable loss, detached
        loss of the unadapted prior on the same K future transitions)."""

    @classmethod
    @abc.abstractmethod
    def batch_predict(cls, adapters: Sequence["MetaAdapter"]) -> StepFn:
        """One step function for E environments, each with its own adapter (all around the same model):
        ``(obs [E, ..., o], act [E, ..., a]) -> [E, ..., o]``, row ``e`` predicted by ``adapters[e]``."""

    @abc.abstractmethod
    def particle_step(self) -> ParticleStep:
        """The current adapted model as a trajectory-sampling step (:class:`ParticleStep`); cheap enough to
        build after every :meth:`adapt` (no copies of weights)."""

    @classmethod
    @abc.abstractmethod
    def batch_particle_step(cls, adapters: Sequence["MetaAdapter"]) -> ParticleStep:
        """One trajectory-sampling step for ``B`` environments in lockstep, each with its own adapter (all
        around the same model): row ``b`` of ``state [B, N, P, o]`` is rolled out with ``adapters[b]``'s
        adapted model (the batched :meth:`particle_step`)."""

    @abc.abstractmethod
    def member_errors(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int) -> Tensor:
        """Each ensemble member's adapted error on segments ``[B, M+K, ...]``: the mean squared error of the
        normalised state change on the K future transitions after adapting on the M past ones, ``[E]``
        (unitless). Meta-training ranks elites with it."""

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.learned.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        own = self.learned.state_dict()
        problems = [k for k in own if k not in state] + [k for k in state if k not in own]
        problems += [f"{k}: saved {list(state[k].shape)}, adapter {list(v.shape)}"
                     for k, v in own.items() if k in state and state[k].shape != v.shape]
        if problems:
            raise ValueError(f"adapter state does not fit this {self.config.kind!r} adapter (saved with other "
                             f"adapter settings?): {'; '.join(problems[:8])}")
        with torch.no_grad():
            self.learned.load_state_dict(state)
        self.reset()
