"""Networks shared by the model-free baselines: MLPs and a tanh-squashed Gaussian policy (SAC's critics are
ensembles: :mod:`adaptive_mbrl.baselines.ensemble_layers`).

Shapes: ``B`` is any batch shape (``[..., dim]`` works everywhere); ``o`` observation (plus latent, for
PEARL) size, ``a`` action size. Actions of :class:`TanhGaussianPolicy` lie in (-1, 1), the robots' range.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from adaptive_mbrl.baselines.ensemble_layers import EnsembleMLP

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, device: torch.device | str | None = None,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``activation`` between layers, no output activation."""
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b, device=device), activation()]
    layers.append(nn.Linear(sizes[-1], out_dim, device=device))
    return nn.Sequential(*layers)


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``tanh(u)`` with ``u ~ N(mean, exp(log_std)^2)``, at ``u = pre_tanh``.

    ``log p(a) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)]`` (change of variables), with
    ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` for numerical stability. Inputs ``[..., a]``;
    returns ``[...]`` (nats).
    """
    std = log_std.exp()
    gauss = -0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (gauss - log_det).sum(-1)


class TanhGaussianPolicy(nn.Module):
    """``obs [..., o] -> tanh(N(mean, std))`` actions ``[..., a]`` in (-1, 1); ``log_std`` clamped to [-20, 2].

    The body is a one-member :class:`~adaptive_mbrl.baselines.ensemble_layers.EnsembleMLP` (ReLU,
    feature-major matmuls: faster than ``nn.Linear`` for SAC's large batches on a CPU core)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int],
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.body = EnsembleMLP(1, obs_dim, hidden, 2 * action_dim, device=device)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mean [..., a], log_std [..., a])`` of the pre-tanh Gaussian."""
        out = self.body(obs.reshape(-1, self.obs_dim))[0].reshape(*obs.shape[:-1], 2 * self.action_dim)
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, deterministic: bool = False,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Reparameterised sample. Returns ``action [..., a]``, ``log_prob [...]`` (of the squashed action),
        ``mean``, ``log_std``, ``pre_tanh`` ``[..., a]``. ``deterministic``: ``tanh(mean)``."""
        mean, log_std = self(obs)
        if deterministic:
            pre_tanh = mean
        else:
            noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
            pre_tanh = mean + log_std.exp() * noise
        return {"action": torch.tanh(pre_tanh), "log_prob": tanh_gaussian_log_prob(pre_tanh, mean, log_std),
                "mean": mean, "log_std": log_std, "pre_tanh": pre_tanh}
