"""Supervised fitting of a :class:`DynamicsModel` on transitions, with validation and early stopping."""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from adaptive_mbrl.models.dynamics import DynamicsModel


@dataclass
class FitResult:
    """What :func:`fit` did. Losses are the model's loss (:meth:`DynamicsModel.loss`: normalised-delta MSE, or
    for a probabilistic model Gaussian NLL plus the log-variance bound penalty; summed over members).

    ``val_member_mse`` / ``val_member_nll`` are per member ``[E]`` on the held-out rows, for the weights that
    were kept (empty without held-out rows; ``val_member_nll`` is empty for a deterministic model). ``elites`` are
    the members kept as elites (lowest held-out MSE, ascending index); empty when the model keeps all.
    """

    train_losses: list[float] = field(default_factory=list)  # mean minibatch loss per epoch
    val_losses: list[float] = field(default_factory=list)    # full validation-set loss per epoch (may be empty)
    best_epoch: int = -1                                     # epoch whose weights were kept (0-based)
    stopped_early: bool = False
    val_member_mse: list[float] = field(default_factory=list)
    val_member_nll: list[float] = field(default_factory=list)
    elites: list[int] = field(default_factory=list)


def make_optimizer(model: DynamicsModel) -> torch.optim.Optimizer:
    """AdamW with the model config's learning rate and weight decay."""
    c = model.config
    return torch.optim.AdamW(model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)


def split_indices(n: int, val_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random train / validation indices of ``n`` rows (CPU). ``val`` is empty when ``val_fraction`` is 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=generator)
    n_val = min(n - 1, max(1, round(n * val_fraction))) if val_fraction > 0 and n > 1 else 0
    return perm[n_val:], perm[:n_val]


def bootstrap_rows(n_train: int, members: int, generator: torch.Generator) -> Tensor:
    """Each member's bootstrap resample: ``[members, n_train]`` row positions drawn with replacement."""
    return torch.randint(n_train, (members, n_train), generator=generator)


def _minibatches(n_train: int, members: int, batch_size: int, generator: torch.Generator,
                 resample: Tensor | None = None) -> Tensor:
    """Per-member shuffled row positions for one epoch: ``[batches, members, batch]`` (last partial dropped
    unless it is the only batch). With ``resample`` ``[members, n_train]`` (see :func:`bootstrap_rows`), member
    ``e`` walks through its own resample ``resample[e]`` in shuffled order."""
    perms = torch.stack([torch.randperm(n_train, generator=generator) for _ in range(members)])
    if resample is not None:
        perms = resample.gather(1, perms)
    batch = min(batch_size, n_train)
    n_batches = max(1, n_train // batch)
    return perms[:, :n_batches * batch].reshape(members, n_batches, batch).transpose(0, 1)


def fit(model: DynamicsModel, obs: Tensor, act: Tensor, next_obs: Tensor, context: Tensor | None = None, *,
        epochs: int = 50, batch_size: int | None = None, val_fraction: float = 0.1, patience: int = 5,
        refit_normalizers: bool = True, optimizer: torch.optim.Optimizer | None = None,
        generator: torch.Generator | None = None, progress: bool | None = None) -> FitResult:
    """Train ``model`` on transitions by minibatch AdamW; keep the weights with the best validation loss.

    Each ensemble member draws its own shuffled minibatches (a different order per member), so members
    differ through both their initialisation and their data order; with ``model.config.bootstrap`` each
    member also trains on its own bootstrap resample of the training rows (drawn once per call). A
    probabilistic model trains on its Gaussian NLL (see :meth:`DynamicsModel.loss`). After training, every
    member's held-out MSE (and NLL) is measured on the validation rows; with ``model.config.elites = k > 0``
    the ``k`` members with the lowest held-out MSE become the model's elites.

    Args:
        model: the model to train (in place).
        obs, act, next_obs: transitions ``[N, o], [N, a], [N, o]`` in raw units (any device; moved to the model's).
        context: ``[N, c]`` for a model with ``context_dim > 0``.
        epochs: maximum passes over the training rows.
        batch_size: rows per minibatch per member (default: ``model.config.batch_size``).
        val_fraction: share of rows held out for early stopping (0 = train on all, no early stopping).
        patience: stop after this many epochs without a validation improvement.
        refit_normalizers: fit the normalisers on the training rows first. Set False to keep statistics
            that a (meta-)trained prior depends on.
        optimizer: reuse an optimiser (e.g. across online refits); default :func:`make_optimizer`.
        generator: CPU generator for the split and shuffling (seeded -> reproducible); default unseeded.
        progress: show a tqdm bar; default only when stderr is a terminal.

    Returns:
        The per-epoch losses, the epoch that was kept, per-member held-out errors and the elites.

    Raises:
        ValueError: row counts differ, no rows, or elites are requested without held-out rows.
    """
    n = obs.shape[0]
    if not (act.shape[0] == next_obs.shape[0] == n) or (context is not None and context.shape[0] != n):
        raise ValueError(f"fit: different numbers of rows: obs {list(obs.shape)}, act {list(act.shape)}, "
                         f"next_obs {list(next_obs.shape)}" + ("" if context is None else f", context {list(context.shape)}"))
    if n == 0:
        raise ValueError("fit: no transitions")
    device = model.device
    data = [t.to(device=device, dtype=torch.float32) for t in (obs, act, next_obs)]
    ctx = None if context is None else context.to(device=device, dtype=torch.float32)
    if generator is None:
        generator = torch.Generator()
        generator.seed()  # non-deterministic, without touching the global RNG
    train_idx, val_idx = split_indices(n, val_fraction, generator)
    if model.config.elites and len(val_idx) == 0:
        raise ValueError("fit: choosing elites (model.config.elites > 0) needs held-out rows: val_fraction > 0")
    if refit_normalizers:
        model.fit_normalizers(*(t[train_idx.to(device)] for t in data))
    optimizer = optimizer or make_optimizer(model)
    batch_size = batch_size or model.config.batch_size
    members = model.ensemble_size
    result = FitResult()
    best_state, best_val, since_best = None, float("inf"), 0
    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(range(epochs), desc="fit dynamics", disable=not show, leave=False)
    train_dev, val_dev = train_idx.to(device), val_idx.to(device)
    resample = bootstrap_rows(len(train_idx), members, generator) if model.config.bootstrap else None
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for rows in _minibatches(len(train_idx), members, batch_size, generator, resample):
            idx = train_dev[rows.to(device)]  # [E, batch]
            batch_ctx = None if ctx is None else ctx[idx]
            loss = model.loss(*(t[idx] for t in data), batch_ctx, stacked=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        result.train_losses.append(total / count)
        if len(val_idx) == 0:
            result.best_epoch = epoch
            bar.set_postfix(train=f"{result.train_losses[-1]:.4g}")
            continue
        val = _evaluate(model, data, ctx, val_dev)
        result.val_losses.append(val)
        bar.set_postfix(train=f"{result.train_losses[-1]:.4g}", val=f"{val:.4g}")
        if val < best_val:
            best_val, since_best, result.best_epoch = val, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best >= patience:
                result.stopped_early = True
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if len(val_idx):
        _rank_members(model, data, ctx, val_dev, result)
    return result


@torch.no_grad()
def _rank_members(model: DynamicsModel, data: list[Tensor], ctx: Tensor | None, idx: Tensor,
                  result: FitResult) -> None:
    """Per-member held-out errors into ``result``; with ``config.elites`` store the best members as elites."""
    mse, nll = model.member_errors(*(t[idx] for t in data), None if ctx is None else ctx[idx])
    result.val_member_mse = mse.tolist()
    result.val_member_nll = [] if nll is None else nll.tolist()
    if model.config.elites:
        best = torch.argsort(mse, stable=True)[:model.config.elites]
        model.set_elites(best)
        result.elites = model.elite_members.tolist()


@torch.no_grad()
def _evaluate(model: DynamicsModel, data: list[Tensor], ctx: Tensor | None, idx: Tensor) -> float:
    """Model loss on the rows ``idx`` (all members see the same rows)."""
    model.eval()
    return model.loss(*(t[idx] for t in data), None if ctx is None else ctx[idx]).item()
