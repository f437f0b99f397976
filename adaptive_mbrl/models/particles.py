"""A dynamics model as a particle step for trajectory sampling (PETS): each particle row goes through its member.

Shapes: ``B`` environments, ``N`` candidates, ``P`` particles per candidate, ``R = B * N * P`` rows,
``K`` drawable members (the model's elites, or all ``E`` members), ``o`` / ``a`` / ``c`` as in
:mod:`adaptive_mbrl.models.dynamics`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from adaptive_mbrl.models.dynamics import DynamicsModel


def is_round_robin(members: Tensor | None, particles: int, k: int) -> bool:
    """Whether ``members`` is ``[P]`` equal to ``arange(P) % K`` with ``P`` a multiple of ``K`` (TS-inf's usual
    assignment), which :func:`to_member_major` lays out without sorting."""
    if members is None or members.dim() != 1 or particles % k or members.shape[0] != particles:
        return False
    return bool(torch.equal(members, torch.arange(particles, device=members.device) % k))


def to_member_major(rows: Tensor, k: int) -> Tensor:
    """``[B, N, P, dim]`` (particle ``p`` = ``j K + k``) -> ``[K, B N (P / K), dim]``, block ``k`` holding the
    particles of member ``k`` in ``(b, n, j)`` order: the order a stable sort by member gives."""
    b, n, p, dim = rows.shape
    return rows.reshape(b, n, p // k, k, dim).permute(3, 0, 1, 2, 4).reshape(k, -1, dim)


def from_member_major(out: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`to_member_major`: ``[K, B N (P / K), o]`` -> ``[B, N, P, o]`` (``shape`` the particles')."""
    b, n, p, _ = shape
    k = out.shape[0]
    return out.reshape(k, b, n, p // k, out.shape[-1]).permute(1, 2, 3, 0, 4).reshape(b, n, p, out.shape[-1])


class EnsembleParticleStep:
    """``step(state [B, N, P, o], act [B, N, a], members, generator) -> next_state [B, N, P, o]`` for a model.

    Satisfies :class:`adaptive_mbrl.planning.rollout.ParticleStep`. ``members`` holds, per particle, a
    position in the model's drawable members (``0 .. K-1``; ``[P]`` shared by every candidate or
    ``[B, N, P]``), or is None for the ensemble mean without sampling. A probabilistic model samples each
    next state from its member's Gaussian with ``generator``; a deterministic one returns the member's
    prediction.

    Batching: round-robin particles (``members`` ``[P]`` equal to ``arange(P) % K``, ``P`` a multiple of
    ``K``: what TS-inf draws) are laid out member-major by a view and one copy, with no sorting, and
    evaluated as one stacked ``[K, R / K, in]`` call. Any other assignment in which every used member gets
    the same number of rows is sorted by member into the same call (cost: ``R`` rows either way; the same
    numbers, random draws included). Otherwise every member evaluates every row and each row keeps its
    member's output (cost: ``E * R`` rows). A single network (``E = 1``) takes the rows as they are.

    Args:
        model: the dynamics model (in eval mode for planning).
        context: ``[..., c]`` broadcastable to ``[B, N, P, c]`` for a model with ``context_dim > 0``.
    """

    def __init__(self, model: DynamicsModel, context: Tensor | None = None) -> None:
        self.model, self.context = model, context

    @property
    def num_members(self) -> int:
        """K, the members a particle can be assigned to (the elites, or all members)."""
        return int(self.model.drawable_members.numel())

    def __call__(self, state: Tensor, act: Tensor, members: Tensor | None,
                 generator: torch.Generator | None) -> Tensor:
        """Next particle states ``[B, N, P, o]`` (raw units) from ``state [B, N, P, o]`` and ``act [B, N, a]``."""
        model, (b, n, p, o) = self.model, state.shape
        act = act[:, :, None, :].expand(b, n, p, act.shape[-1])
        ctx = None if self.context is None else self.context.expand(b, n, p, self.context.shape[-1])
        if members is None:
            return model.predict(state, act, ctx, member="mean")
        if model.ensemble_size == 1:
            return model.predict(state, act, ctx, sample=generator)
        k = self.num_members
        if is_round_robin(members, p, k):
            return self._round_robin(state, act, ctx, k, generator)
        ids = model.drawable_members[members.expand(b, n, p).reshape(-1)]  # [R] member index per row
        rows = [state.reshape(-1, o), act.reshape(-1, act.shape[-1])]
        rows.append(None if ctx is None else ctx.reshape(-1, ctx.shape[-1]))
        return self._by_member(rows, ids, generator).reshape(b, n, p, o)

    def _round_robin(self, state: Tensor, act: Tensor, ctx: Tensor | None, k: int,
                     generator: torch.Generator | None) -> Tensor:
        """Particle ``p`` through drawable member ``p % K``: ``[B, N, P, dim]`` inputs -> ``[B, N, P, o]``."""
        model = self.model
        stacked = [None if t is None else to_member_major(t, k) for t in (state, act, ctx)]
        subset = None if k == model.ensemble_size else model.drawable_members
        out = model.predict(*stacked, stacked=True, members=subset, sample=generator)  # [K, B N m, o]
        return from_member_major(out, state.shape)

    def _by_member(self, rows: list[Tensor | None], ids: Tensor, generator: torch.Generator | None) -> Tensor:
        """Each row ``[R, dim]`` through member ``ids[r]``: ``[R, o]``."""
        model, count = self.model, ids.shape[0]
        used, per_member = torch.unique(ids, return_counts=True)
        if bool((per_member == per_member[0]).all()):
            order = torch.argsort(ids, stable=True)  # rows grouped by member, in ascending member order
            k = used.shape[0]
            stacked = [None if t is None else t[order].reshape(k, count // k, t.shape[-1]) for t in rows]
            subset = None if k == model.ensemble_size else used
            out = model.predict(*stacked, stacked=True, members=subset, sample=generator)
            result = torch.empty_like(out.reshape(count, -1))
            result[order] = out.reshape(count, -1)
            return result
        every = model.predict(*rows, member="all", sample=generator)  # [E, R, o]
        return every[ids, torch.arange(count, device=ids.device)]
