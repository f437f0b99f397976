"""Meta-objectives on trajectory segments: GrBAL's gradient-through-a-gradient loss and ReBAL's
recurrent-context loss, for single networks and ensembles (deterministic or probabilistic).

A batch of ``B`` segments holds ``M + K`` consecutive transitions of one episode and one task each:
``obs [B, M+K, o]``, ``act [B, M+K, a]``, ``next_obs [B, M+K, o]`` (raw units). The first ``M``
(``past``) transitions are what the adapter sees; the loss is the model's training loss (see
:meth:`DynamicsModel.loss`: MSE of the normalised state difference, or the Gaussian NLL plus the
log-variance bound penalty for a probabilistic model; summed over ensemble members) on the next ``K``.

Ensembles (``E`` members): segments may also be given per member, ``[E, B, M+K, ...]`` ("stacked"):
member ``e`` adapts on and is scored on its own segments ``[e]`` (each member its own sample of the data,
as in bootstrapped ensemble fitting). With ``[B, M+K, ...]`` every member sees the same segments.

- GrBAL: ``phi = theta - alpha (.) grad_theta L(theta; past)`` (``steps`` times), meta-loss
  ``L(phi; future)``. The meta-gradient w.r.t. ``theta`` (and ``alpha`` for Meta-SGD) is exact second
  order: the inner gradient is computed with ``torch.func.grad`` inside ``torch.func.vmap`` (one inner
  step per segment, all segments in one batched call), and ordinary autograd differentiates through it.
  ``first_order=True`` stops the gradient at the inner gradient (FOMAML): ``d phi / d theta = I``.
  An ensemble's members are stacked in every weight (``[E, in, out]``) and its loss is the sum of the
  members' losses, so one gradient of that sum is every member's own inner gradient: all members adapt in
  the same call, with no loop over members. The inner step adapts the network weights only
  (:func:`inner_names`); a probabilistic model's log-variance bounds stay at ``theta`` (they are soft
  limits learned over all tasks and shared by the members; a step on one window would couple the
  members through them).
- ReBAL: ``context = encoder(past)`` and meta-loss ``L(theta; future | context)``; the context is one
  vector per segment (shared by the members) or one per member and segment (``[E, B, c]``).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from adaptive_mbrl.models.dynamics import DynamicsModel, call_with_params, functional_loss

Params = dict[str, Tensor]
InnerLR = float | Mapping[str, Tensor]
"""A scalar step size, or one tensor per parameter name (Meta-SGD; same shape as the parameter)."""
BOUNDS = ("max_logvar", "min_logvar")
"""A probabilistic model's log-variance bounds: meta-trained, never moved by GrBAL's inner step."""


def model_params(model: DynamicsModel) -> Params:
    """The model's trainable parameters by ``state_dict`` name (the live tensors, not copies)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def inner_names(model: DynamicsModel) -> list[str]:
    """Names of the parameters GrBAL's inner step adapts: every trainable one except the bounds."""
    return [name for name in model_params(model) if name not in BOUNDS]


def inner_update(model: DynamicsModel, params: Mapping[str, Tensor], obs: Tensor, act: Tensor, next_obs: Tensor,
                 lr: InnerLR, steps: int = 1, first_order: bool = False, stacked: bool = False,
                 mse: bool = False) -> Params:
    """GrBAL's inner loop on one window: ``steps`` gradient steps of the model loss from ``params``.

    Args:
        model: supplies the architecture and the normalisers (kept fixed).
        params: start parameters (``theta``), by name. Entries named in :data:`BOUNDS` pass through.
        obs, act, next_obs: the window ``[m, o], [m, a], [m, o]`` (raw units), the same for every member;
            or with ``stacked`` one window per member ``[E, m, ...]``. ``m = 0`` returns ``params``.
        lr: step size (scalar) or per-parameter step sizes (Meta-SGD).
        steps: inner gradient steps.
        first_order: detach the inner gradients (no second-order terms flow to ``params`` / ``lr``).
        stacked: the window has a leading member axis.
        mse: step on the squared error of the predicted mean instead of the model's own loss (the same for
            a deterministic model; see :meth:`DynamicsModel.loss`).

    Returns:
        the adapted parameters ``phi`` (differentiable w.r.t. ``params`` and ``lr`` unless detached).
        Works under ``torch.func.vmap`` (a leading segment axis on the window).
    """
    phi = dict(params)
    if obs.shape[-2] == 0:
        return phi
    fixed = {name: phi.pop(name) for name in BOUNDS if name in phi}

    def window_loss(p: Params) -> Tensor:
        return functional_loss(model, {**fixed, **p} if fixed else p, obs, act, next_obs, stacked=stacked, mse=mse)

    for _ in range(steps):
        grads = torch.func.grad(window_loss)(phi)
        phi = {name: value - _rate(lr, name) * (grads[name].detach() if first_order else grads[name])
               for name, value in phi.items()}
    return {**fixed, **phi} if fixed else phi


def _rate(lr: InnerLR, name: str) -> Tensor | float:
    return lr if isinstance(lr, (int, float)) else lr[name]


def split_segments(obs: Tensor, act: Tensor, next_obs: Tensor, past: int) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``[B, M+K, ...]`` (or per member ``[E, B, M+K, ...]``) segments -> (past ``[..., M, ...]`` x3,
    future ``[..., K, ...]`` x3)."""
    length = obs.shape[-2]
    if obs.dim() not in (3, 4) or not 0 <= past < length:
        raise ValueError(f"segments must be [B, M+K, o] or [E, B, M+K, o] with 0 <= M={past} < M+K, "
                         f"got {list(obs.shape)}")
    return ((obs[..., :past, :], act[..., :past, :], next_obs[..., :past, :]),
            (obs[..., past:, :], act[..., past:, :], next_obs[..., past:, :]))


def check_segments(model: DynamicsModel, obs: Tensor) -> bool:
    """Whether segments are per member (``[E, B, T, o]``; True) or shared (``[B, T, o]``; False)."""
    if obs.dim() == 4 and obs.shape[0] != model.ensemble_size:
        raise ValueError(f"per-member segments need a leading axis of ensemble_size = {model.ensemble_size}, "
                         f"got {list(obs.shape)}")
    return obs.dim() == 4


def grbal_meta_loss(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, lr: InnerLR,
                    steps: int = 1, first_order: bool = False, inner_mse: bool = False) -> tuple[Tensor, Tensor]:
    """GrBAL meta-loss: mean over segments of ``L(phi_b; future_b)``, ``phi_b`` adapted on ``past_b``.

    Args:
        model: the prior ``theta`` = its parameters (the meta-gradient lands in their ``.grad``).
        obs, act, next_obs: segments ``[B, M+K, o], [B, M+K, a], [B, M+K, o]`` (raw units), or per member
            ``[E, B, M+K, ...]`` for an ensemble.
        past: M, transitions per segment used for the inner step.
        lr, steps, first_order: see :func:`inner_update`.
        inner_mse: the inner step on the squared error of the mean (:func:`inner_update`'s ``mse``); the
            meta-loss stays the model's own.

    Returns:
        (meta-loss, differentiable scalar; prior loss ``L(theta; future)`` detached, for monitoring).
        For an ensemble both are sums over members of the members' mean losses.
    """
    stacked = check_segments(model, obs)
    (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
    theta = model_params(model)

    def per_segment(o: Tensor, a: Tensor, n: Tensor, o2: Tensor, a2: Tensor, n2: Tensor) -> Tensor:
        phi = inner_update(model, theta, o, a, n, lr, steps, first_order, stacked, inner_mse)
        return functional_loss(model, phi, o2, a2, n2, stacked=stacked)

    losses = torch.func.vmap(per_segment, in_dims=1 if stacked else 0)(po, pa, pn, fo, fa, fn)
    with torch.no_grad():
        prior = model.loss(fo, fa, fn, stacked=stacked)
    return losses.mean(), prior


@torch.no_grad()
def grbal_member_errors(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor, past: int,
                        lr: InnerLR, steps: int = 1, inner_mse: bool = False) -> Tensor:
    """Each member's mean squared error of the normalised state change on the future transitions after
    adapting on the past ones (shared segments ``[B, M+K, ...]``): ``[E]``, unitless. Ranks elites."""
    (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
    theta = {k: v.detach() for k, v in model_params(model).items()}

    def per_segment(o: Tensor, a: Tensor, n: Tensor, o2: Tensor, a2: Tensor, n2: Tensor) -> Tensor:
        phi = inner_update(model, theta, o, a, n, lr, steps, first_order=True, mse=inner_mse)
        return call_with_params(model, phi, "member_errors", o2, a2, n2)[0]

    return torch.func.vmap(per_segment)(po, pa, pn, fo, fa, fn).mean(0)


def context_loss(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor, context: Tensor) -> Tensor:
    """The model's loss on transitions ``[B, T, ...]`` (or per member ``[E, B, T, ...]``) with one context
    per segment ``[B, c]`` (shared by the members) or per member and segment ``[E, B, c]``."""
    steps = obs.shape[-2]
    if context.dim() == 2 and obs.dim() == 3:
        return model.loss(obs, act, next_obs, context[:, None, :].expand(-1, steps, -1))
    members = context.shape[0] if context.dim() == 3 else obs.shape[0]
    if obs.dim() == 3:
        obs, act, next_obs = (t.expand(members, *t.shape) for t in (obs, act, next_obs))
    if context.dim() == 2:
        context = context.expand(members, *context.shape)
    return model.loss(obs, act, next_obs, context[:, :, None, :].expand(-1, -1, steps, -1), stacked=True)


def rebal_meta_loss(model: DynamicsModel, encode: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor],
                    obs: Tensor, act: Tensor, next_obs: Tensor, past: int,
                    mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """ReBAL meta-loss: ``L(theta; future | encode(past))``.

    Args:
        model: a model with ``context_dim = c > 0``.
        encode: ``(obs [B, M, o], act [B, M, a], next_obs [B, M, o], mask [B, M] bool or None)`` (segments
            per member: ``[E, B, M, ...]`` and mask ``[E, B, M]``) -> ``[B, c]`` or ``[E, B, c]``.
        obs, act, next_obs: segments ``[B, M+K, ...]`` or ``[E, B, M+K, ...]`` (raw units).
        past: M.
        mask: which past transitions the encoder may read (shaped like the segments' leading axes plus
            ``M``, True = seen); None = all.

    Returns:
        (meta-loss, differentiable scalar; the loss with the empty-window context, detached).
    """
    check_segments(model, obs)
    (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
    loss = context_loss(model, fo, fa, fn, encode(po, pa, pn, mask))
    with torch.no_grad():
        empty = encode(po[..., :0, :], pa[..., :0, :], pn[..., :0, :], None)
        prior = context_loss(model, fo, fa, fn, empty)
    return loss, prior


def random_window_mask(batch: int, past: int, share: float, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> Tensor:
    """Masks ``[B, M]`` that hide the oldest transitions of a random ``share`` of segments (a uniform
    number of visible ones in ``0 .. M-1``), so the learner also sees the short windows of an episode's
    start. Visible transitions are always the most recent ones."""
    visible = torch.full((batch,), past, dtype=torch.long)
    short = torch.rand(batch, generator=generator) < share
    visible[short] = torch.randint(0, max(past, 1), (int(short.sum()),), generator=generator)
    return (torch.arange(past)[None, :] >= (past - visible)[:, None]).to(device)
