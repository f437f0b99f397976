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

Ensembles (PETS-style): the context conditions every member. ``config.encoder_per_member = False`` (default)
reads the window with one encoder whose context ``[c]`` every member gets; ``True`` gives each member its
own encoder (:class:`EnsembleRecurrentEncoder`, the E encoders batched as one, no loop over members) and
its own context ``[E, c]``. A probabilistic model is meta-trained on its Gaussian NLL (its training loss).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from adaptive_mbrl.adaptation.base import AdapterConfig
from adaptive_mbrl.adaptation.meta_adapter import MetaAdapter, StepFn
from adaptive_mbrl.adaptation.meta_losses import context_loss, random_window_mask, rebal_meta_loss, split_segments
from adaptive_mbrl.adaptation.particle_steps import GroupedParticleStep, StepFnParticles
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.planning.rollout import ParticleStep

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


class EnsembleRecurrentEncoder(nn.Module):
    """E independent recurrent encoders run as one: transitions -> one context per member ``[E, B, c]``.

    The same cell equations as ``nn.GRUCell`` / ``nn.LSTMCell`` (gate order r, z, n / i, f, g, o), with
    every weight stacked over members (``[E, in, gates]``) so each time step is one batched matmul. Weights
    are initialised like PyTorch's cells (uniform in ``+-1/sqrt(hidden)``), the head like ``nn.Linear``.

    Args:
        members: E.
        obs_dim, act_dim, context_dim, hidden, cell: as :class:`RecurrentEncoder`.
    """

    def __init__(self, members: int, obs_dim: int, act_dim: int, context_dim: int, hidden: int,
                 cell: str = "gru") -> None:
        super().__init__()
        in_features, gates = 2 * obs_dim + act_dim, (3 if cell == "gru" else 4) * hidden
        self.kind, self.hidden, self.members = cell, hidden, members

        def uniform(bound: float, *shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(members, *shape).uniform_(-bound, bound))

        k = 1.0 / hidden ** 0.5
        self.weight_ih, self.weight_hh = uniform(k, in_features, gates), uniform(k, hidden, gates)
        self.bias_ih, self.bias_hh = uniform(k, 1, gates), uniform(k, 1, gates)
        self.head_weight, self.head_bias = uniform(k, hidden, context_dim), uniform(k, 1, context_dim)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> Tensor:
        """Read ``features`` ``[B, m, 2o + a]`` (the same windows for every member) or ``[E, B, m, 2o + a]``
        (each member its own) oldest first; ``mask`` ``[B, m]`` / ``[E, B, m]`` (False = skip that step).
        Returns the contexts ``[E, B, c]`` (``m = 0``: each member's zero-state context)."""
        batch, steps = features.shape[-3], features.shape[-2]
        h = features.new_zeros(self.members, batch, self.hidden)
        c = torch.zeros_like(h)
        for t in range(steps):
            x = torch.matmul(features[..., t, :], self.weight_ih) + self.bias_ih  # [E, B, gates]
            hh = torch.baddbmm(self.bias_hh, h, self.weight_hh)
            if self.kind == "gru":
                xr, xz, xn = x.chunk(3, -1)
                hr, hz, hn = hh.chunk(3, -1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h_new, c_new = (1 - z) * n + z * h, c
            else:
                i, f, g, o = (x + hh).chunk(4, -1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if mask is None:
                h, c = h_new, c_new
            else:
                keep = mask[..., t, None]
                h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        return torch.baddbmm(self.head_bias, h, self.head_weight)


def member_predict(model: DynamicsModel, obs: Tensor, act: Tensor, contexts: Tensor) -> Tensor:
    """The ensemble-mean prediction (over the drawable members) when member ``e`` gets context
    ``contexts[e]``: ``obs [..., o]``, ``act [..., a]``, ``contexts [E, c]`` or ``[E, lead..., c]`` (leading
    axes of ``obs``) -> ``[..., o]`` (raw units)."""
    members = model.ensemble_size
    while contexts.dim() < obs.dim() + 1:
        contexts = contexts.unsqueeze(-2)
    stacked = [t.expand(members, *t.shape) for t in (obs, act)]
    out = model.predict(*stacked, contexts.expand(members, *obs.shape[:-1], contexts.shape[-1]), stacked=True)
    return out[model.drawable_members].mean(0)


def transition_features(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """``[..., o], [..., a], [..., o]`` raw -> ``[..., 2o + a]``: normalised obs, action and state change."""
    return torch.cat((model.obs_norm.normalize(obs), model.act_norm.normalize(act),
                      model.delta_norm.normalize(next_obs - obs)), dim=-1)


class ReBALAdapter(MetaAdapter):
    """ReBAL at run time (:meth:`adapt` / :meth:`predict`) and in meta-training (:meth:`meta_loss`).

    Args:
        model: a model with ``context_dim > 0``.
        config: ``window`` (M), ``encoder`` (gru / lstm), ``encoder_hidden``, ``encoder_per_member``.

    Attributes:
        context: the current context, ``[c]`` (shared encoder) or ``[E, c]`` (one per member).
    """

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        super().__init__(model, config)
        if model.context_dim <= 0:
            raise ValueError("the rebal adapter needs a model with context_dim > 0 (set model.context_dim "
                             "in the preset)")
        self.per_member = config.encoder_per_member
        sizes = (model.obs_dim, model.act_dim, model.context_dim, config.encoder_hidden, config.encoder)
        self.learned: nn.Module = (EnsembleRecurrentEncoder(model.ensemble_size, *sizes) if self.per_member
                                   else RecurrentEncoder(*sizes)).to(model.device)
        self.context = torch.zeros(model.context_dim, device=model.device)
        self.empty_context = self.context
        self.gate_open = False
        self.reset()

    def encode(self, obs: Tensor, act: Tensor, next_obs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Context of windows ``[B, m, ...]`` (raw units) -> ``[B, c]`` (differentiable); per member
        (``encoder_per_member``) ``[E, B, c]``. Windows per member ``[E, B, m, ...]`` (mask ``[E, B, m]``)
        give ``[E, B, c]`` with either encoder."""
        features = transition_features(self.model, obs, act, next_obs)
        if self.per_member or features.dim() == 3:
            return self.learned(features, mask)
        members, batch = features.shape[:2]
        flat_mask = None if mask is None else mask.flatten(0, 1)
        return self.learned(features.flatten(0, 1), flat_mask).reshape(members, batch, -1)

    def _window_context(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        """Context of one window ``[m, ...]``: ``[c]`` or per member ``[E, c]``."""
        context = self.encode(obs[None], act[None], next_obs[None])
        return (context[:, 0] if self.per_member else context[0]).clone()

    def _window_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, context: Tensor) -> Tensor:
        """The model's loss on one window ``[m, ...]`` with ``context`` ``[c]`` or ``[E, c]``."""
        if not self.per_member:
            return self.model.loss(obs, act, next_obs, context.expand(obs.shape[0], -1))
        return context_loss(self.model, obs[None], act[None], next_obs[None], context[:, None, :])

    def reset(self) -> None:
        """Back to the prior: the empty-window context."""
        with torch.no_grad():
            empty = torch.zeros(1, 0, self.model.obs_dim, device=self.model.device)
            self.empty_context = self._window_context(empty[0], empty[0, :, :self.model.act_dim], empty[0])
        self.context = self.empty_context
        self.gate_open = False

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """Context from the window ``[m, o], [m, a], [m, o]`` (oldest first); with ``context_gate`` the
        prior context instead when the encoded one explains the window worse (:attr:`gate_open` says which)."""
        with torch.no_grad():
            context = self._window_context(obs, action, next_obs)
            if self.config.context_gate and obs.shape[0] > 0:
                encoded = self._window_loss(obs, action, next_obs, context)
                prior = self._window_loss(obs, action, next_obs, self.empty_context)
                self.gate_open = bool(encoded < prior)
                context = context if self.gate_open else self.empty_context
            else:
                self.gate_open = obs.shape[0] > 0
            self.context = context

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        if self.per_member:
            return member_predict(self.model, obs, action, self.context)
        return self.model.predict(obs, action, self.context)

    def particle_step(self) -> ParticleStep:
        """The model conditioned on the current context (each member on its own with
        ``encoder_per_member``) as a trajectory-sampling step; no copies of weights."""
        if self.per_member:
            return GroupedParticleStep(self.model, contexts=self.context[None])
        return EnsembleParticleStep(self.model, self.context)

    def meta_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, first_order: bool = False,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Segments ``[B, M+K, ...]`` or per member ``[E, B, M+K, ...]`` (see :func:`rebal_meta_loss`)."""
        lead = obs.shape[:-2]
        mask = random_window_mask(lead.numel(), past, SHORT_WINDOW_SHARE, generator, obs.device)
        return rebal_meta_loss(self.model, self.encode, obs, act, next_obs, past, mask.reshape(*lead, past))

    @torch.no_grad()
    def member_errors(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int) -> Tensor:
        (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
        model, members = self.model, self.model.ensemble_size
        context = self.encode(po, pa, pn)  # [B, c] or [E, B, c]
        context = context.expand(members, *context.shape[-2:])[:, :, None, :].expand(-1, -1, fo.shape[1], -1)
        stacked = [t.expand(members, *t.shape) for t in (fo, fa, fn)]
        target = model.delta_norm.normalize(stacked[2] - stacked[0])
        mean = model(model.obs_norm.normalize(stacked[0]), model.act_norm.normalize(stacked[1]), context,
                     stacked=True)
        return (mean - target).square().reshape(members, -1).mean(1)

    @classmethod
    def batch_predict(cls, adapters: Sequence["ReBALAdapter"]) -> StepFn:
        """Rows of ``[E, ..., o]`` predicted with each adapter's own context."""
        model = adapters[0].model
        contexts = torch.stack([a.context for a in adapters])  # [E, c] (per member: [E, members, c])
        if adapters[0].per_member:
            return lambda obs, act: member_predict(model, obs, act, contexts.transpose(0, 1))

        def step(obs: Tensor, act: Tensor) -> Tensor:
            shape = (obs.shape[0],) + (1,) * (obs.dim() - 2) + (contexts.shape[-1],)
            return model.predict(obs, act, contexts.reshape(shape))

        return step


    @classmethod
    def batch_particle_step(cls, adapters: Sequence["ReBALAdapter"]) -> ParticleStep:
        """A trajectory-sampling step for ``B = len(adapters)`` environments: row ``b`` is conditioned on
        ``adapters[b]``'s context (per member with ``encoder_per_member``). A single deterministic network
        with a shared encoder goes through :meth:`batch_predict` (its numerics unchanged)."""
        model = adapters[0].model
        contexts = torch.stack([a.context for a in adapters])  # [B, c] or [B, E, c]
        if adapters[0].per_member:
            return GroupedParticleStep(model, contexts=contexts)
        if model.ensemble_size == 1 and not model.probabilistic:
            return StepFnParticles(cls.batch_predict(adapters))
        return EnsembleParticleStep(model, contexts[:, None, None, :])
