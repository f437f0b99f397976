"""ReBAL (recurrence-based adaptive learner, Nagabandi et al. 2019): a recurrent encoder reads the latest
M transitions; a linear map of its final state is the context the dynamics model is conditioned on.

Every control step the encoder re-reads the current window from a zero state (the same computation as
in meta-training, where it reads the M past transitions of a segment), so the context depends only on
the last M transitions. :meth:`ReBALAdapter.reset` returns to the empty-window context.

With ``config.context_gate`` the encoded context is kept only when the model's loss on the window's own
transitions is lower with it than with the empty-window context (the prior). A recurrent encoder
generalises poorly outside its training tasks (``benchmarks/adaptation_gain.py``: on held-out
half_cheetah joints the encoded context made the next 16 predictions 25 % worse than the prior's); the
gate checks the context against the data it was computed from, at the cost of two model passes over M
transitions per control step.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from adaptive_mbrl.adaptation.base import AdapterConfig
from adaptive_mbrl.adaptation.meta_adapter import MetaAdapter, StepFn
from adaptive_mbrl.adaptation.meta_losses import random_window_mask, rebal_meta_loss
from adaptive_mbrl.models.dynamics import DynamicsModel

SHORT_WINDOW_SHARE = 0.25
"""Share of meta-training segments whose past is cut to a random 0..M-1 most recent transitions, so the
encoder also learns the short windows at the start of an episode."""


class RecurrentEncoder(nn.Module):
    """Transitions ``(obs, act, delta)`` (normalised with the model's statistics) -> context ``[B, c]``.

    Args:
        obs_dim, act_dim: o, a.
        context_dim: c, the model's ``context_dim``.
        hidden: recurrent state size.
        cell: ``gru`` or ``lstm``.
    """

    def __init__(self, obs_dim: int, act_dim: int, context_dim: int, hidden: int, cell: str = "gru") -> None:
        super().__init__()
        in_features = 2 * obs_dim + act_dim
        self.kind, self.hidden = cell, hidden
        self.cell = nn.GRUCell(in_features, hidden) if cell == "gru" else nn.LSTMCell(in_features, hidden)
        self.head = nn.Linear(hidden, context_dim)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """Read ``features [B, m, 2o + a]`` oldest first; ``mask [B, m]`` (False = skip that step, the state
        passes through unchanged). Returns the context ``[B, c]`` (``m = 0``: the zero state's context)."""
        batch, steps = features.shape[:2]
        h = features.new_zeros(batch, self.hidden)
        c = features.new_zeros(batch, self.hidden)
        for t in range(steps):
            if self.kind == "gru":
                h_new, c_new = self.cell(features[:, t], h), c
            else:
                h_new, c_new = self.cell(features[:, t], (h, c))
            if mask is None:
                h, c = h_new, c_new
            else:
                keep = mask[:, t, None]
                h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        return self.head(h)


def transition_features(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., o], [..., a], [..., o]`` raw -> ``[..., 2o + a]``: normalised obs, action and state change."""
    return torch.cat((model.obs_norm.normalize(obs), model.act_norm.normalize(act),
                      model.delta_norm.normalize(next_obs - obs)), dim=-1)


class ReBALAdapter(MetaAdapter):
    """ReBAL at run time (:meth:`adapt` / :meth:`predict`) and in meta-training (:meth:`meta_loss`).

    Args:
        model: a model with ``context_dim > 0``.
        config: ``window`` (M), ``encoder`` (gru / lstm), ``encoder_hidden``.
    """

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        super().__init__(model, config)
        if model.context_dim <= 0:
            raise ValueError("the rebal adapter needs a model with context_dim > 0 (set model.context_dim "
                             "in the preset)")
        self.learned = RecurrentEncoder(model.obs_dim, model.act_dim, model.context_dim, config.encoder_hidden,
                                        config.encoder).to(model.device)
        self.context = torch.zeros(model.context_dim, device=model.device)
        self.empty_context = self.context
        self.gate_open = False
        self.reset()

    def encode(self, obs: Tensor, act: Tensor, next_obs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Context of windows ``[B, m, ...]`` (raw units) -> ``[B, c]`` (differentiable)."""
        return self.learned(transition_features(self.model, obs, act, next_obs), mask)

    def reset(self) -> None:
        """Back to the prior: the empty-window context."""
        with torch.no_grad():
            empty = torch.zeros(1, 0, self.model.obs_dim, device=self.model.device)
            self.empty_context = self.encode(empty, empty[..., :self.model.act_dim], empty)[0].clone()
        self.context = self.empty_context
        self.gate_open = False

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """Context from the window ``[m, o], [m, a], [m, o]`` (oldest first); with ``context_gate`` the
        prior context instead when the encoded one explains the window worse (:attr:`gate_open` says which)."""
        with torch.no_grad():
            context = self.encode(obs[None], action[None], next_obs[None])[0].clone()
            if self.config.context_gate and obs.shape[0] > 0:
                steps = obs.shape[0]
                encoded = self.model.loss(obs, action, next_obs, context.expand(steps, -1))
                prior = self.model.loss(obs, action, next_obs, self.empty_context.expand(steps, -1))
                self.gate_open = bool(encoded < prior)
                context = context if self.gate_open else self.empty_context
            else:
                self.gate_open = obs.shape[0] > 0
            self.context = context

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.model.predict(obs, action, self.context)

    def meta_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, first_order: bool = False,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        mask = random_window_mask(obs.shape[0], past, SHORT_WINDOW_SHARE, generator, obs.device)
        return rebal_meta_loss(self.model, self.encode, obs, act, next_obs, past, mask)

    @classmethod
    def batch_predict(cls, adapters: Sequence["ReBALAdapter"]) -> StepFn:
        """Rows of ``[E, ..., o]`` predicted with each adapter's own context."""
        model = adapters[0].model
        contexts = torch.stack([a.context for a in adapters])  # [E, c]

        def step(obs: Tensor, act: Tensor) -> Tensor:
            shape = (obs.shape[0],) + (1,) * (obs.dim() - 2) + (contexts.shape[-1],)
            return model.predict(obs, act, contexts.reshape(shape))

        return step

