"""Learned dynamics: an MLP (or an ensemble of them) that predicts normalised state differences.

Notation: ``o`` = observation size, ``a`` = action size, ``c`` = context size (0 when unused),
``E`` = ensemble size. Raw tensors are in the environment's units; ``*_n`` tensors are normalised.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaptive_mbrl.config import bounded
from adaptive_mbrl.models.normalizer import Normalizer

Member = int | Literal["mean", "all"]
_ACTIVATIONS = {"relu": F.relu, "silu": F.silu, "tanh": torch.tanh}


@dataclass
class ModelConfig:
    """Dynamics network and its optimiser settings (load with ``adaptive_mbrl.config.from_dict``).

    Attributes:
        hidden_sizes: widths of the hidden layers; ``[]`` gives a linear model. Default 3 x 200: on the
            2-core CPU random shooting 500 x 10 takes ~13 ms on one thread, 3 x 512 (the GrBAL paper) ~5x that.
        activation: SiLU (swish, as in PETS / CaDM) by default: smooth, so GrBAL's gradient-through-a-
            gradient step has non-zero second derivatives; it costs little next to the matmuls.
        ensemble_size: number of independently initialised members (E); 1 = a single network.
        context_dim: size of an extra input vector (e.g. a recurrent adapter's state), 0 = none.
        learning_rate: AdamW step size.
        weight_decay: AdamW decoupled weight decay.
        batch_size: minibatch size (transitions per member) when fitting.
    """

    hidden_sizes: list[int] = bounded([200, 200, 200], lo=1)
    activation: Literal["relu", "silu", "tanh"] = "silu"
    ensemble_size: int = bounded(1, lo=1)
    context_dim: int = bounded(0, lo=0)
    learning_rate: float = bounded(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = bounded(0.0, lo=0.0)
    batch_size: int = bounded(256, lo=1)


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps with weights ``[E, in, out]`` and biases ``[E, 1, out]``.

    Initialised like ``nn.Linear`` (uniform in ``+-1/sqrt(in)``), independently per member.
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int,
                 device: torch.device | str | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        # Initialise on the CPU with a CPU generator, so a seed gives the same weights on every device.
        weight = torch.empty(ensemble_size, in_features, out_features).uniform_(-bound, bound, generator=generator)
        bias = torch.empty(ensemble_size, 1, out_features).uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(weight.to(device))
        self.bias = nn.Parameter(bias.to(device))

    def forward(self, x: Tensor, member: int | None = None) -> Tensor:
        """Apply the maps.

        Args:
            x: ``[M, in]`` (the same rows for every member) or ``[E, M, in]`` (rows per member).
            member: apply only this member's map to ``x`` ``[M, in]``.

        Returns:
            ``[M, out]`` when ``E == 1`` or ``member`` is given and ``x`` is 2-D; else ``[E, M, out]``.
        """
        if member is not None:
            return torch.addmm(self.bias[member], x, self.weight[member])
        if x.dim() == 2:
            if self.weight.shape[0] == 1:
                return torch.addmm(self.bias[0], x, self.weight[0])
            return torch.matmul(x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        e, i, o = self.weight.shape
        return f"ensemble_size={e}, in_features={i}, out_features={o}"


class DynamicsModel(nn.Module):
    """Predicts ``next_obs = obs + delta`` with an MLP on normalised inputs and outputs.

    ``forward`` works in normalised space; :meth:`predict` and :meth:`loss` in raw units. All three
    run under ``torch.func.functional_call`` (see :func:`functional_predict`, :func:`functional_loss`).

    Args:
        obs_dim: observation size o.
        act_dim: action size a.
        config: network settings.
        device: where parameters and normaliser statistics live.
        seed: seeds the weight initialisation (a CPU generator; identical weights on any device).
    """

    def __init__(self, obs_dim: int, act_dim: int, config: ModelConfig | None = None,
                 device: torch.device | str | None = None, seed: int | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.obs_dim, self.act_dim, self.context_dim = obs_dim, act_dim, config.context_dim
        self.ensemble_size = config.ensemble_size
        self._act = _ACTIVATIONS[config.activation]
        self.obs_norm = Normalizer(obs_dim, device=device)
        self.act_norm = Normalizer(act_dim, device=device)
        self.delta_norm = Normalizer(obs_dim, device=device)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sizes = [obs_dim + act_dim + config.context_dim, *config.hidden_sizes, obs_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(config.ensemble_size, n_in, n_out, device=device, generator=generator)
            for n_in, n_out in zip(sizes[:-1], sizes[1:]))

    @property
    def device(self) -> torch.device:
        return self.layers[0].weight.device

    # --- normalised space -------------------------------------------------------------------------------
    def forward(self, obs_n: Tensor, act_n: Tensor, context: Tensor | None = None, *,
                member: int | None = None, stacked: bool = False) -> Tensor:
        """Normalised state difference.

        Args:
            obs_n: normalised observations ``[..., o]``.
            act_n: normalised actions ``[..., a]`` (same leading shape).
            context: ``[..., c]`` when ``context_dim > 0``, else None.
            member: evaluate only this ensemble member.
            stacked: the leading axis of the inputs is the ensemble axis ``[E, ..., dim]``: member ``e``
                sees ``obs_n[e]`` (e.g. bootstrapped minibatches, per-member particles).

        Returns:
            ``[..., o]`` for a single network or with ``member``; ``[E, ..., o]`` for an ensemble.
        """
        x = self._inputs(obs_n, act_n, context)
        lead = x.shape[:-1]
        if stacked:
            if member is not None or lead[:1] != (self.ensemble_size,):
                raise ValueError(f"stacked inputs need a leading ensemble axis of {self.ensemble_size} and no "
                                 f"member; got inputs {list(x.shape)}, member={member}")
            h, lead = x.reshape(self.ensemble_size, -1, x.shape[-1]), lead[1:]
        else:
            h = x.reshape(-1, x.shape[-1])
        for layer in self.layers[:-1]:
            h = self._act(layer(h, member))
        h = self.layers[-1](h, member)
        if h.dim() == 3:  # [E, M, o]
            return h.reshape(h.shape[0], *lead, self.obs_dim)
        return h.reshape(*lead, self.obs_dim)

    def _inputs(self, obs_n: Tensor, act_n: Tensor, context: Tensor | None) -> Tensor:
        """Concatenate ``[obs_n, act_n, context]`` along the last axis, checking sizes."""
        self._check_sizes(obs_n, act_n)
        parts = [obs_n, act_n]
        if self.context_dim:
            if context is None or context.shape[-1] != self.context_dim:
                got = None if context is None else list(context.shape)
                raise ValueError(f"this model needs context [..., {self.context_dim}], got {got}")
            parts.append(context)
        elif context is not None:
            raise ValueError("this model has context_dim = 0 but a context was given")
        if len({p.shape[:-1] for p in parts}) > 1:
            shape = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
            parts = [p.expand(*shape, p.shape[-1]) for p in parts]
        return torch.cat(parts, dim=-1)

    def _check_sizes(self, obs: Tensor, act: Tensor) -> None:
        if obs.shape[-1] != self.obs_dim or act.shape[-1] != self.act_dim:
            raise ValueError(f"expected obs [..., {self.obs_dim}] and act [..., {self.act_dim}], "
                             f"got {list(obs.shape)} and {list(act.shape)}")

    # --- raw units --------------------------------------------------------------------------------------
    def predict(self, obs: Tensor, act: Tensor, context: Tensor | None = None, *,
                member: Member = "mean", stacked: bool = False) -> Tensor:
        """Next observation in raw units.

        Args:
            obs: ``[..., o]``; act: ``[..., a]``; context: ``[..., c]`` or None.
            member: for an ensemble, ``"mean"`` (average of the members' predictions), ``"all"``
                (``[E, ..., o]``) or an index (that member only). Ignored for a single network.
            stacked: inputs carry a leading ensemble axis (see :meth:`forward`); returns ``[E, ..., o]``.

        Returns:
            ``[..., o]`` (or ``[E, ..., o]`` for ``"all"`` / ``stacked``).
        """
        self._check_sizes(obs, act)
        index = member if isinstance(member, int) and self.ensemble_size > 1 else None
        delta_n = self(self.obs_norm.normalize(obs), self.act_norm.normalize(act), context,
                       member=index, stacked=stacked)
        next_obs = obs + self.delta_norm.denormalize(delta_n)
        if self.ensemble_size > 1 and index is None and member == "mean" and not stacked:
            next_obs = next_obs.mean(0)
        return next_obs

    def loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, context: Tensor | None = None, *,
             stacked: bool = False) -> Tensor:
        """Mean squared error of the normalised state difference, summed over ensemble members.

        Args:
            obs, act, next_obs, context: ``[..., dim]`` transitions (``[E, ..., dim]`` if ``stacked``).

        Returns:
            scalar (unitless).
        """
        self._check_sizes(obs, act)
        target = self.delta_norm.normalize(next_obs - obs)
        pred = self(self.obs_norm.normalize(obs), self.act_norm.normalize(act), context, stacked=stacked)
        err = (pred - target).square()
        if self.ensemble_size == 1:
            return err.mean()
        return err.reshape(self.ensemble_size, -1).mean(1).sum()

    @torch.no_grad()
    def fit_normalizers(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> None:
        """Fit the input and output normalisers on transitions ``[N, o], [N, a], [N, o]`` (raw units)."""
        self.obs_norm.fit(obs)
        self.act_norm.fit(act)
        self.delta_norm.fit(next_obs - obs)

    def extra_repr(self) -> str:
        c = self.config
        return (f"obs_dim={self.obs_dim}, act_dim={self.act_dim}, context_dim={self.context_dim}, "
                f"hidden={c.hidden_sizes}, activation={c.activation}, ensemble_size={c.ensemble_size}")


class _MethodCall(nn.Module):
    """Runs one method of a wrapped module as ``forward``, so ``functional_call`` can reach it."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self.method)(*args, **kwargs)


def call_with_params(model: nn.Module, params: Mapping[str, Tensor], method: str, *args, **kwargs):
    """``model.<method>(*args, **kwargs)`` with tensors from ``params`` in place of the model's own.

    ``params`` uses the model's ``state_dict`` names (``"layers.0.weight"``, ``"obs_norm.mean"``, ...);
    names it leaves out keep the model's values. Gradients flow to the given tensors (e.g. GrBAL's
    adapted parameters ``phi = theta - alpha * grad``). Built on ``torch.func.functional_call``.
    """
    wrapped = _MethodCall(model, method)
    return torch.func.functional_call(wrapped, {f"module.{k}": v for k, v in params.items()}, args, kwargs)


def functional_predict(model: DynamicsModel, params: Mapping[str, Tensor], obs: Tensor, act: Tensor,
                       context: Tensor | None = None, **kwargs) -> Tensor:
    """:meth:`DynamicsModel.predict` with the given parameters: ``[..., o], [..., a] -> [..., o]``."""
    return call_with_params(model, params, "predict", obs, act, context, **kwargs)


def functional_loss(model: DynamicsModel, params: Mapping[str, Tensor], obs: Tensor, act: Tensor,
                    next_obs: Tensor, context: Tensor | None = None, **kwargs) -> Tensor:
    """:meth:`DynamicsModel.loss` with the given parameters: transitions ``[..., dim]`` -> scalar."""
    return call_with_params(model, params, "loss", obs, act, next_obs, context, **kwargs)
