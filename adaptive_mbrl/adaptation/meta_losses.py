"""Meta-objectives on trajectory segments: GrBAL's gradient-through-a-gradient loss and ReBAL's
recurrent-context loss.

A batch of ``B`` segments holds ``M + K`` consecutive transitions of one episode and one task each:
``obs [B, M+K, o]``, ``act [B, M+K, a]``, ``next_obs [B, M+K, o]`` (raw units). The first ``M``
(``past``) transitions are what the adapter sees; the loss is the model's prediction loss (MSE of the
normalised state difference, see :meth:`DynamicsModel.loss`) on the next ``K``.

- GrBAL: ``phi = theta - alpha (.) grad_theta L(theta; past)`` (``steps`` times), meta-loss
  ``L(phi; future)``. The meta-gradient w.r.t. ``theta`` (and ``alpha`` for Meta-SGD) is exact second
  order: the inner gradient is computed with ``torch.func.grad`` inside ``torch.func.vmap`` (one inner
  step per segment, all segments in one batched call), and ordinary autograd differentiates through it.
  ``first_order=True`` stops the gradient at the inner gradient (FOMAML): ``d phi / d theta = I``.
- ReBAL: ``context = encoder(past)`` and meta-loss ``L(theta; future | context)``.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from adaptive_mbrl.models.dynamics import DynamicsModel, functional_loss

Params = dict[str, Tensor]
InnerLR = float | Mapping[str, Tensor]
"""A scalar step size, or one tensor per parameter name (Meta-SGD; same shape as the parameter)."""


def model_params(model: DynamicsModel) -> Params:
    """The model's trainable parameters by ``state_dict`` name (the live tensors, not copies)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def check_single_network(model: DynamicsModel) -> None:
    """GrBAL adapts one network; an ensemble would need one inner step per member."""
    if model.ensemble_size != 1:
        raise ValueError(f"GrBAL needs a single network (model.ensemble_size = 1), got {model.ensemble_size}")


def inner_update(model: DynamicsModel, params: Mapping[str, Tensor], obs: Tensor, act: Tensor, next_obs: Tensor,
                 lr: InnerLR, steps: int = 1, first_order: bool = False) -> Params:
    """GrBAL's inner loop on one window: ``steps`` gradient steps of the model loss from ``params``.

    Args:
        model: supplies the architecture and the normalisers (kept fixed).
        params: start parameters (``theta``), by name.
        obs, act, next_obs: the window ``[m, o], [m, a], [m, o]`` (raw units). ``m = 0`` returns ``params``.
        lr: step size (scalar) or per-parameter step sizes (Meta-SGD).
        steps: inner gradient steps.
        first_order: detach the inner gradients (no second-order terms flow to ``params`` / ``lr``).

    Returns:
        the adapted parameters ``phi`` (differentiable w.r.t. ``params`` and ``lr`` unless detached).
        Works under ``torch.func.vmap`` (a leading segment axis on the window).
    """
    phi = dict(params)
    if obs.shape[-2] == 0:
        return phi

    def window_loss(p: Params) -> Tensor:
        return functional_loss(model, p, obs, act, next_obs)

    for _ in range(steps):
        grads = torch.func.grad(window_loss)(phi)
        phi = {name: value - _rate(lr, name) * (grads[name].detach() if first_order else grads[name])
               for name, value in phi.items()}
    return phi


def _rate(lr: InnerLR, name: str) -> Tensor | float:
    return lr if isinstance(lr, (int, float)) else lr[name]


def split_segments(obs: Tensor, act: Tensor, next_obs: Tensor, past: int) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``[B, M+K, ...]`` segments -> (past ``[B, M, ...]`` x3, future ``[B, K, ...]`` x3)."""
    length = obs.shape[1]
    if obs.dim() != 3 or not 0 <= past < length:
        raise ValueError(f"segments must be [B, M+K, o] with 0 <= M={past} < M+K, got {list(obs.shape)}")
    return ((obs[:, :past], act[:, :past], next_obs[:, :past]),
            (obs[:, past:], act[:, past:], next_obs[:, past:]))


def grbal_meta_loss(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, lr: InnerLR,
                    steps: int = 1, first_order: bool = False) -> tuple[Tensor, Tensor]:
    """GrBAL meta-loss: mean over segments of ``L(phi_b; future_b)``, ``phi_b`` adapted on ``past_b``.

    Args:
        model: the prior ``theta`` = its parameters (the meta-gradient lands in their ``.grad``).
        obs, act, next_obs: segments ``[B, M+K, o], [B, M+K, a], [B, M+K, o]`` (raw units).
        past: M, transitions per segment used for the inner step.
        lr, steps, first_order: see :func:`inner_update`.

    Returns:
        (meta-loss, differentiable scalar; prior loss ``L(theta; future)`` detached, for monitoring).
    """
    check_single_network(model)
    (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
    theta = model_params(model)

    def per_segment(o: Tensor, a: Tensor, n: Tensor, o2: Tensor, a2: Tensor, n2: Tensor) -> Tensor:
        phi = inner_update(model, theta, o, a, n, lr, steps, first_order)
        return functional_loss(model, phi, o2, a2, n2)

    losses = torch.func.vmap(per_segment)(po, pa, pn, fo, fa, fn)
    with torch.no_grad():
        prior = model.loss(fo, fa, fn)
    return losses.mean(), prior


def rebal_meta_loss(model: DynamicsModel, encode: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor],
                    obs: Tensor, act: Tensor, next_obs: Tensor, past: int,
                    mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """ReBAL meta-loss: ``L(theta; future | encode(past))``.

    Args:
        model: a model with ``context_dim = c > 0``.
        encode: ``(obs [B, M, o], act [B, M, a], next_obs [B, M, o], mask [B, M] bool or None) -> [B, c]``.
        obs, act, next_obs: segments ``[B, M+K, ...]`` (raw units).
        past: M.
        mask: which past transitions the encoder may read (``[B, M]``, True = seen); None = all.

    Returns:
        (meta-loss, differentiable scalar; the loss with the empty-window context, detached).
    """
    (po, pa, pn), (fo, fa, fn) = split_segments(obs, act, next_obs, past)
    context = encode(po, pa, pn, mask)  # [B, c]
    future = fo.shape[1]
    loss = model.loss(fo, fa, fn, context[:, None, :].expand(-1, future, -1))
    with torch.no_grad():
        empty = encode(po[:, :0], pa[:, :0], pn[:, :0], None)
        prior = model.loss(fo, fa, fn, empty[:, None, :].expand(-1, future, -1))
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
