"""Learned dynamics: an MLP (or an ensemble of them) that predicts normalised state differences.

Notation: ``o`` = observation size, ``a`` = action size, ``c`` = context size (0 when unused),
``E`` = ensemble size, ``K`` = members in a stacked call. Raw tensors are in the environment's units;
``*_n`` tensors are normalised. A probabilistic model (PETS, Chua et al. 2018) predicts, per member, a
diagonal Gaussian over the normalised state change: a mean and a log-variance (natural log of a variance in
normalised units squared).
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
        probabilistic: each member predicts a Gaussian (mean and log-variance of the normalised state
            change) and trains on the Gaussian NLL (PETS). False = a deterministic MLP trained on MSE.
        max_logvar_init: initial learned upper soft bound of the log-variance, per state dimension
            (probabilistic only; normalised units).
        min_logvar_init: initial learned lower soft bound (probabilistic only); below ``max_logvar_init``.
        logvar_penalty: weight of ``sum(max_logvar) - sum(min_logvar)`` added to the NLL, which keeps the
            learned bounds tight (probabilistic only; PETS uses 0.01).
        bootstrap: when fitting, each member trains on its own bootstrap resample of the training rows
            (drawn with replacement once per :func:`~adaptive_mbrl.models.fit` call); False = every member
            sees all rows, in its own shuffled order.
        elites: keep the best ``elites`` members by held-out MSE after fitting; the ensemble mean and
            trajectory sampling use only those. 0 = all members. At most ``ensemble_size``.
    """

    hidden_sizes: list[int] = bounded([200, 200, 200], lo=1)
    activation: Literal["relu", "silu", "tanh"] = "silu"
    ensemble_size: int = bounded(1, lo=1)
    context_dim: int = bounded(0, lo=0)
    learning_rate: float = bounded(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = bounded(0.0, lo=0.0)
    batch_size: int = bounded(256, lo=1)
    probabilistic: bool = False
    max_logvar_init: float = 0.5
    min_logvar_init: float = -10.0
    logvar_penalty: float = bounded(0.01, lo=0.0)
    bootstrap: bool = False
    elites: int = bounded(0, lo=0)

    def __post_init__(self) -> None:
        if self.elites > self.ensemble_size:
            raise ValueError(f"elites ({self.elites}) must not exceed ensemble_size ({self.ensemble_size})")
        if not self.min_logvar_init < self.max_logvar_init:
            raise ValueError(f"min_logvar_init ({self.min_logvar_init}) must be below max_logvar_init "
                             f"({self.max_logvar_init})")


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

    def forward(self, x: Tensor, member: int | None = None, members: Tensor | None = None) -> Tensor:
        """Apply the maps.

        Args:
            x: ``[M, in]`` (the same rows for every member) or ``[E, M, in]`` (rows per member), or
                ``[K, M, in]`` with ``members``.
            member: apply only this member's map to ``x`` ``[M, in]``.
            members: ``[K]`` member indices: ``x[k]`` goes through member ``members[k]`` (``x`` 3-D).

        Returns:
            ``[M, out]`` when ``E == 1`` or ``member`` is given and ``x`` is 2-D; ``[K, M, out]`` with
            ``members``; else ``[E, M, out]``.
        """
        if members is not None:
            return torch.baddbmm(self.bias[members], x, self.weight[members])
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

    With ``config.probabilistic`` the last layer has ``2 o`` outputs per member: the mean of the
    normalised state change and a raw log-variance, squashed between the learned per-dimension bounds
    ``max_logvar`` / ``min_logvar`` (parameters ``[o]`` shared by the members, as in PETS). A deterministic
    model has exactly the parameters and buffers it had before probabilistic models existed, so saved
    states keep loading. ``elite_members`` (a ``[elites]`` long buffer, only when ``config.elites > 0``)
    names the members that the ensemble mean and trajectory sampling use.

    Args:
        obs_dim: observation size o.
        act_dim: action size a.
        config: network settings.
        device: where parameters and normaliser statistics live.
        seed: seeds the weight initialisation (a CPU generator; identical weights on any device).
    """

    elite_members: Tensor

    def __init__(self, obs_dim: int, act_dim: int, config: ModelConfig | None = None,
                 device: torch.device | str | None = None, seed: int | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.obs_dim, self.act_dim, self.context_dim = obs_dim, act_dim, config.context_dim
        self.ensemble_size = config.ensemble_size
        self.probabilistic = config.probabilistic
        self._act = _ACTIVATIONS[config.activation]
        self.obs_norm = Normalizer(obs_dim, device=device)
        self.act_norm = Normalizer(act_dim, device=device)
        self.delta_norm = Normalizer(obs_dim, device=device)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        out_dim = 2 * obs_dim if config.probabilistic else obs_dim
        sizes = [obs_dim + act_dim + config.context_dim, *config.hidden_sizes, out_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(config.ensemble_size, n_in, n_out, device=device, generator=generator)
            for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        if config.probabilistic:
            self.max_logvar = nn.Parameter(torch.full((obs_dim,), config.max_logvar_init, device=device))
            self.min_logvar = nn.Parameter(torch.full((obs_dim,), config.min_logvar_init, device=device))
        if config.elites:
            self.register_buffer("elite_members", torch.arange(config.elites, device=device))

    @property
    def device(self) -> torch.device:
        return self.layers[0].weight.device

    @property
    def drawable_members(self) -> Tensor:
        """Members that the ensemble mean and trajectory sampling use: ``[K]`` long (elites, or all E)."""
        if self.config.elites:
            return self.elite_members
        return torch.arange(self.ensemble_size, device=self.device)

    @torch.no_grad()
    def set_elites(self, members: Tensor | list[int]) -> None:
        """Store which members are elites (``config.elites`` distinct indices in ``[0, E)``)."""
        members = torch.as_tensor(members, dtype=torch.long, device=self.device).flatten()
        if not self.config.elites:
            raise ValueError("this model keeps all members (config.elites = 0); it has no elites to set")
        if (members.numel() != self.config.elites or members.unique().numel() != members.numel()
                or members.min() < 0 or members.max() >= self.ensemble_size):
            raise ValueError(f"elites must be {self.config.elites} distinct members in [0, {self.ensemble_size}), "
                             f"got {members.tolist()}")
        self.elite_members.copy_(members.sort().values)

    # --- normalised space -------------------------------------------------------------------------------
    def forward(self, obs_n: Tensor, act_n: Tensor, context: Tensor | None = None, *,
                member: int | None = None, stacked: bool = False, members: Tensor | None = None) -> Tensor:
        """Normalised state difference (a probabilistic model: the mean of its Gaussian).

        Args:
            obs_n: normalised observations ``[..., o]``.
            act_n: normalised actions ``[..., a]`` (same leading shape).
            context: ``[..., c]`` when ``context_dim > 0``, else None.
            member: evaluate only this ensemble member.
            stacked: the leading axis of the inputs is the ensemble axis ``[E, ..., dim]``: member ``e``
                sees ``obs_n[e]`` (e.g. bootstrapped minibatches, per-member particles).
            members: with ``stacked``: ``[K]`` member indices; the leading axis is ``K`` and block ``k``
                goes through member ``members[k]`` (e.g. the elites only).

        Returns:
            ``[..., o]`` for a single network or with ``member``; ``[E, ..., o]`` for an ensemble
            (``[K, ..., o]`` with ``members``).
        """
        out = self._network(obs_n, act_n, context, member, stacked, members)
        return out[..., :self.obs_dim] if self.probabilistic else out

    def gaussian(self, obs_n: Tensor, act_n: Tensor, context: Tensor | None = None, *,
                 member: int | None = None, stacked: bool = False,
                 members: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and bounded log-variance of the normalised state difference (probabilistic models only).

        Arguments and shapes as :meth:`forward`. The log-variance lies softly inside
        ``[min_logvar, max_logvar]``: ``lv = max - softplus(max - raw); lv = min + softplus(lv - min)``.

        Returns:
            ``(mean_n, logvar_n)``, both shaped like :meth:`forward`'s output (unitless; log of a
            variance in normalised units).
        """
        if not self.probabilistic:
            raise ValueError("gaussian() needs a probabilistic model (config.probabilistic = true)")
        out = self._network(obs_n, act_n, context, member, stacked, members)
        mean, raw = out[..., :self.obs_dim], out[..., self.obs_dim:]
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        return mean, self.min_logvar + F.softplus(logvar - self.min_logvar)

    def _network(self, obs_n: Tensor, act_n: Tensor, context: Tensor | None, member: int | None,
                 stacked: bool, members: Tensor | None) -> Tensor:
        """The MLP's raw output ``[..., out]`` (``[E or K, ..., out]`` for ensembles; ``out`` = o or 2 o)."""
        x = self._inputs(obs_n, act_n, context)
        lead = x.shape[:-1]
        if members is not None and not stacked:
            raise ValueError("members (a subset of the ensemble) needs stacked inputs")
        if stacked:
            # the weights' leading axis: E, or the blocks of weights passed in by call_with_params
            blocks = self.layers[0].weight.shape[0] if members is None else members.shape[0]
            if member is not None or lead[:1] != (blocks,):
                raise ValueError(f"stacked inputs need a leading ensemble axis of {blocks} and no "
                                 f"member; got inputs {list(x.shape)}, member={member}")
            h, lead = x.reshape(blocks, -1, x.shape[-1]), lead[1:]
        else:
            h = x.reshape(-1, x.shape[-1])
        for layer in self.layers[:-1]:
            h = self._act(layer(h, member) if members is None else layer(h, members=members))
        h = self.layers[-1](h, member) if members is None else self.layers[-1](h, members=members)
        if h.dim() == 3:  # [E, M, out]
            return h.reshape(h.shape[0], *lead, h.shape[-1])
        return h.reshape(*lead, h.shape[-1])

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
                member: Member = "mean", stacked: bool = False, members: Tensor | None = None,
                sample: bool | torch.Generator | None = None) -> Tensor:
        """Next observation in raw units.

        Args:
            obs: ``[..., o]``; act: ``[..., a]``; context: ``[..., c]`` or None.
            member: for an ensemble, ``"mean"`` (average of the drawable members' predictions: the elites
                when ``config.elites > 0``, else all), ``"all"`` (``[E, ..., o]``) or an index (that member
                only). Ignored for a single network.
            stacked: inputs carry a leading ensemble axis (see :meth:`forward`); returns ``[E, ..., o]``.
            members: with ``stacked``, ``[K]`` member indices for the leading axis; returns ``[K, ..., o]``.
            sample: probabilistic models only (ignored otherwise): draw the next observation from the
                member's Gaussian, ``obs + denorm(mean_n + exp(logvar_n / 2) * eps)``, with ``eps``
                standard normal from this generator (``True``: the global RNG). Needs one member per
                prediction: not ``member="mean"`` on an ensemble. None / False = the mean.

        Returns:
            ``[..., o]`` (or ``[E, ..., o]`` for ``"all"`` / ``stacked``; ``[K, ..., o]`` with ``members``).
        """
        self._check_sizes(obs, act)
        index = member if isinstance(member, int) and self.ensemble_size > 1 else None
        averaged = self.ensemble_size > 1 and index is None and member == "mean" and not stacked
        obs_n, act_n = self.obs_norm.normalize(obs), self.act_norm.normalize(act)
        if self.probabilistic and sample is not None and sample is not False:
            if averaged:
                raise ValueError("sampling needs one member per prediction: pass member=<index>, 'all' or "
                                 "stacked inputs, not member='mean'")
            mean, logvar = self.gaussian(obs_n, act_n, context, member=index, stacked=stacked, members=members)
            generator = sample if isinstance(sample, torch.Generator) else None
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            delta_n = torch.addcmul(mean, eps, (0.5 * logvar).exp())
        elif averaged and self.config.elites:  # only the elites are evaluated, as one stacked call
            k = self.elite_members.shape[0]
            stack = [None if t is None else t.expand(k, *t.shape) for t in (obs_n, act_n, context)]
            delta_n = self(*stack, stacked=True, members=self.elite_members).mean(0)
            return obs + self.delta_norm.denormalize(delta_n)  # the mean of the elites' next observations
        else:
            delta_n = self(obs_n, act_n, context, member=index, stacked=stacked, members=members)
        next_obs = obs + self.delta_norm.denormalize(delta_n)
        return next_obs.mean(0) if averaged else next_obs

    def predict_distribution(self, obs: Tensor, act: Tensor, context: Tensor | None = None, *,
                             member: Member = "mean") -> tuple[Tensor, Tensor]:
        """Mean and variance of the next observation in raw units (probabilistic models only).

        Args:
            obs: ``[..., o]``; act: ``[..., a]``; context: ``[..., c]`` or None.
            member: an index or ``"all"`` (each member's Gaussian), or ``"mean"``: the moments of the
                equal-weight mixture of the drawable members (``var = mean(var_e) + var(mean_e)``).

        Returns:
            ``(next_obs_mean, next_obs_var)``: ``[..., o]`` in observation units and units squared
            (``[E, ..., o]`` for ``"all"``).
        """
        self._check_sizes(obs, act)
        index = member if isinstance(member, int) and self.ensemble_size > 1 else None
        mean_n, logvar_n = self.gaussian(self.obs_norm.normalize(obs), self.act_norm.normalize(act), context,
                                         member=index)
        mean = obs + self.delta_norm.denormalize(mean_n)
        var = logvar_n.exp() * self.delta_norm.std.square()
        if self.ensemble_size > 1 and index is None and member == "mean":
            keep = self.drawable_members
            mean, var = mean[keep], var[keep]
            mix = mean.mean(0)
            return mix, var.mean(0) + (mean - mix).square().mean(0)
        return mean, var

    def loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, context: Tensor | None = None, *,
             stacked: bool = False, mse: bool = False) -> Tensor:
        """Training loss of the normalised state difference, summed over ensemble members.

        Deterministic model: mean squared error per member. Probabilistic model: Gaussian NLL per member,
        ``mean((mu - y)^2 exp(-logvar) + logvar)`` (constant ``log 2 pi`` and factor 1/2 dropped), plus
        ``logvar_penalty * (sum(max_logvar) - sum(min_logvar))`` once.

        Args:
            obs, act, next_obs, context: ``[..., dim]`` transitions (``[E, ..., dim]`` if ``stacked``).
            mse: the mean squared error of the predicted mean for a probabilistic model too (no variance,
                no bound penalty; e.g. GrBAL's ``inner_loss: mse``).

        Returns:
            scalar (unitless).
        """
        self._check_sizes(obs, act)
        target = self.delta_norm.normalize(next_obs - obs)
        obs_n, act_n = self.obs_norm.normalize(obs), self.act_norm.normalize(act)
        if self.probabilistic and mse:
            err, bounds = (self.gaussian(obs_n, act_n, context, stacked=stacked)[0] - target).square(), None
        elif self.probabilistic:
            mean, logvar = self.gaussian(obs_n, act_n, context, stacked=stacked)
            err = (mean - target).square() * torch.exp(-logvar) + logvar
            bounds = self.config.logvar_penalty * (self.max_logvar.sum() - self.min_logvar.sum())
        else:
            err, bounds = (self(obs_n, act_n, context, stacked=stacked) - target).square(), None
        total = err.mean() if self.ensemble_size == 1 else err.reshape(self.ensemble_size, -1).mean(1).sum()
        return total if bounds is None else total + bounds

    @torch.no_grad()
    def member_errors(self, obs: Tensor, act: Tensor, next_obs: Tensor,
                      context: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Per-member errors on the same transitions ``[..., dim]`` (e.g. a held-out split).

        Returns:
            ``(mse [E], nll [E] or None)``: mean squared error of the normalised state change, and for a
            probabilistic model the Gaussian NLL as in :meth:`loss` (without the bound penalty). Unitless.
        """
        self._check_sizes(obs, act)
        target = self.delta_norm.normalize(next_obs - obs)
        obs_n, act_n = self.obs_norm.normalize(obs), self.act_norm.normalize(act)
        rows = lambda t: t.reshape(self.ensemble_size, -1)  # noqa: E731  [E, rows * o]
        if not self.probabilistic:
            return rows((self(obs_n, act_n, context) - target).square()).mean(1), None
        mean, logvar = self.gaussian(obs_n, act_n, context)
        nll = (mean - target).square() * torch.exp(-logvar) + logvar
        return rows((mean - target).square()).mean(1), rows(nll).mean(1)

    @torch.no_grad()
    def fit_normalizers(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> None:
        """Fit the input and output normalisers on transitions ``[N, o], [N, a], [N, o]`` (raw units)."""
        self.obs_norm.fit(obs)
        self.act_norm.fit(act)
        self.delta_norm.fit(next_obs - obs)

    def extra_repr(self) -> str:
        c = self.config
        return (f"obs_dim={self.obs_dim}, act_dim={self.act_dim}, context_dim={self.context_dim}, "
                f"hidden={c.hidden_sizes}, activation={c.activation}, ensemble_size={c.ensemble_size}, "
                f"probabilistic={c.probabilistic}, elites={c.elites}")


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
