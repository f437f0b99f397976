"""Trajectory-sampling steps for several environments whose adapters adapted the same ensemble differently.

During meta-training's collection ``B`` environments run in lockstep, each with its own adapter around the
same dynamics model: GrBAL's adapter ``b`` holds its own adapted weights ``phi_b`` of every member, ReBAL's
its own context (one for all members, or one per member). :class:`GroupedParticleStep` rolls out row ``b``
of the planner's batch with adapter ``b`` in one stacked model call per horizon step.

Shapes: ``B`` environments, ``N`` candidates, ``P`` particles, ``E`` ensemble members, ``K`` drawable
members (elites, or all E), ``o`` / ``a`` / ``c`` as in :mod:`adaptive_mbrl.models.dynamics`.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from adaptive_mbrl.models.dynamics import DynamicsModel, call_with_params
from adaptive_mbrl.models.particles import is_round_robin
from adaptive_mbrl.planning.rollout import StepFn


class GroupedParticleStep:
    """``step(state [B, N, P, o], act [B, N, a], members, generator) -> [B, N, P, o]``, row ``b`` with
    environment ``b``'s adapted weights and / or contexts (a :class:`~adaptive_mbrl.planning.rollout.ParticleStep`).

    Each (environment, member) pair is a "block": with per-environment weights the weights are stacked to
    ``[B * E, ...]`` and block ``b E + e`` uses row ``b E + e``; otherwise every block uses the model's own
    member ``e``. Particle rows are sorted by block and padded to the largest block into one stacked call
    ``[blocks, width, in]`` (no padding when every block gets the same number of rows, e.g. ``P`` a multiple
    of ``K``; cost ``R`` rows then). ``members`` and sampling follow
    :class:`~adaptive_mbrl.models.EnsembleParticleStep`: positions in the drawable members, ``[P]`` or
    ``[B, N, P]``; None = each environment's mean over its drawable members, nothing sampled.

    Each block's weights are gathered once (``[blocks, ...]``) and reused while the blocks stay the same,
    i.e. at every horizon step and iteration of a planning call with mean propagation or round-robin
    particles; gathering them per layer call cost a third of PE-GrBAL's collection time. Blocks that are
    all ``B E`` (environment, member) pairs in order take the stacked weights as they are, with no copy.

    Args:
        model: the dynamics model (architecture, normalisers, drawable members, log-variance bounds).
        params: per-environment weights ``{name: [B, E, ...]}`` of the model's layer parameters (GrBAL's
            ``phi``), or None for the model's own.
        contexts: ``[B, E, c]``, the context of each environment and member (ReBAL), or None.
    """

    def __init__(self, model: DynamicsModel, params: Mapping[str, Tensor] | None = None,
                 contexts: Tensor | None = None) -> None:
        if params is None and contexts is None:
            raise ValueError("GroupedParticleStep needs per-environment params or contexts (else use "
                             "models.EnsembleParticleStep)")
        self.model, self.contexts = model, contexts
        first = next(iter(params.values())) if params else contexts
        self.envs = int(first.shape[0])
        self.params = None if params is None else {k: v.flatten(0, 1) for k, v in params.items()}
        self._blocks: Tensor | None = None  # the blocks whose weights are in self._gathered
        self._gathered: dict[str, Tensor] = {}
        if contexts is not None and tuple(contexts.shape[:2]) != (self.envs, model.ensemble_size):
            raise ValueError(f"contexts must be [B={self.envs}, E={model.ensemble_size}, c], "
                             f"got {list(contexts.shape)}")

    @property
    def num_members(self) -> int:
        """K, the members a particle can be assigned to (the elites, or all members)."""
        return int(self.model.drawable_members.numel())

    def __call__(self, state: Tensor, act: Tensor, members: Tensor | None,
                 generator: torch.Generator | None) -> Tensor:
        """Next particle states ``[B, N, P, o]`` (raw units) from ``state [B, N, P, o]`` and ``act [B, N, a]``."""
        (b, n, p, o), e = state.shape, self.model.ensemble_size
        if b != self.envs:
            raise ValueError(f"this step rolls out {self.envs} environments, got state {list(state.shape)}")
        act = act[:, :, None, :].expand(b, n, p, act.shape[-1])
        env = torch.arange(b, device=state.device)
        if members is None:
            keep = self.model.drawable_members
            k, rows = keep.numel(), n * p
            blocks = (env[:, None] * e + keep[None, :]).reshape(-1)  # [B K]
            inputs = [t.reshape(b, 1, rows, t.shape[-1]).expand(b, k, rows, t.shape[-1]).reshape(b * k, rows, -1)
                      for t in (state, act)]
            out = self._predict(inputs, blocks, rows, None)
            return out.reshape(b, k, n, p, o).mean(1)
        if is_round_robin(members, p, self.num_members):
            return self._round_robin(state, act, env, generator)
        ids = self.model.drawable_members[members.expand(b, n, p)]  # [B, N, P] member index per particle
        blocks = (env[:, None, None] * e + ids).reshape(-1)  # [R]
        rows = [state.reshape(-1, o), act.reshape(-1, act.shape[-1])]
        return self._by_block(rows, blocks, generator).reshape(b, n, p, o)

    def _round_robin(self, state: Tensor, act: Tensor, env: Tensor, generator: torch.Generator | None) -> Tensor:
        """Particle ``p`` of environment ``b`` through block ``(b, p % K)``, laid out ``[B K, N (P / K), dim]`` by
        a view and one copy (the order :meth:`_by_block`'s stable sort gives): ``[B, N, P, o]``."""
        (b, n, p, o), keep = state.shape, self.model.drawable_members
        k = keep.numel()
        blocks = (env[:, None] * self.model.ensemble_size + keep[None, :]).reshape(-1)  # [B K], ascending
        inputs = [t.reshape(b, n, p // k, k, t.shape[-1]).permute(0, 3, 1, 2, 4).reshape(b * k, -1, t.shape[-1])
                  for t in (state, act)]
        out = self._predict(inputs, blocks, n * (p // k), generator)  # [B K, N m, o]
        return out.reshape(b, k, n, p // k, o).permute(0, 2, 3, 1, 4).reshape(b, n, p, o)

    def _by_block(self, rows: list[Tensor], blocks: Tensor, generator: torch.Generator | None) -> Tensor:
        """Row ``r`` of ``rows`` ``[R, dim]`` through block ``blocks[r]``: ``[R, o]``."""
        count = blocks.shape[0]
        used, inverse, sizes = torch.unique(blocks, return_inverse=True, return_counts=True)
        order = torch.argsort(blocks, stable=True)  # rows grouped by block, ascending
        u, width = used.shape[0], int(sizes.max())
        if int(sizes.min()) == width:
            slot = None
            padded = [t[order].reshape(u, width, t.shape[-1]) for t in rows]
        else:  # position of each sorted row inside its block's padded slab
            starts = torch.cumsum(sizes, 0) - sizes
            ranks = inverse[order]
            slot = ranks * width + torch.arange(count, device=blocks.device) - starts[ranks]
            padded = [t.new_zeros(u * width, t.shape[-1]).index_copy_(0, slot, t[order]).reshape(u, width, -1)
                      for t in rows]
        out = self._predict(padded, used, width, generator).reshape(u * width, -1)
        result = torch.empty(count, out.shape[-1], dtype=out.dtype, device=out.device)
        result[order] = out if slot is None else out[slot]
        return result

    def _predict(self, inputs: list[Tensor], blocks: Tensor, width: int,
                 generator: torch.Generator | None) -> Tensor:
        """``inputs`` ``[blocks, width, dim]`` (obs, act) through their blocks -> ``[blocks, width, o]``."""
        context = None
        if self.contexts is not None:
            context = self.contexts.reshape(-1, self.contexts.shape[-1])[blocks][:, None, :].expand(-1, width, -1)
        return call_with_params(self.model, self._block_params(blocks), "predict", *inputs, context, stacked=True,
                                sample=generator)

    def _block_params(self, blocks: Tensor) -> dict[str, Tensor]:
        """The layer weights of each block, ``{name: [blocks, ...]}``: the per-environment weights (or the
        model's own member weights) gathered at ``blocks``, cached while ``blocks`` repeats."""
        if self._blocks is not None and self._blocks.shape == blocks.shape and torch.equal(self._blocks, blocks):
            return self._gathered
        if self.params is None:
            source = {name: p for name, p in self.model.named_parameters() if name.startswith("layers.")}
            index = blocks % self.model.ensemble_size
        else:
            source, index = self.params, blocks
        rows = next(iter(source.values())).shape[0]
        whole = index.shape[0] == rows and torch.equal(index, torch.arange(rows, device=index.device))
        self._gathered = source if whole else {name: value[index] for name, value in source.items()}
        self._blocks = blocks
        return self._gathered


class StepFnParticles:
    """A plain batched step function as a one-member :class:`~adaptive_mbrl.planning.rollout.ParticleStep`
    (``members`` ignored): for single deterministic networks, whose batched prediction already exists.

    Args:
        step: ``(obs [B, ..., o], act [B, ..., a]) -> [B, ..., o]``.
    """

    num_members = 1

    def __init__(self, step: StepFn | Callable[[Tensor, Tensor], Tensor]) -> None:
        self.step = step

    def __call__(self, state: Tensor, act: Tensor, members: Tensor | None,
                 generator: torch.Generator | None) -> Tensor:
        b, n, p, _ = state.shape
        return self.step(state, act[:, :, None, :].expand(b, n, p, act.shape[-1]))
