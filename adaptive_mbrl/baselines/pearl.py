"""PEARL (Rakelly et al. 2019): SAC on ``[s, z]`` with a probabilistic context encoder.

The encoder maps each context transition ``c_n = (s, a, r, s')`` to a Gaussian factor ``N(mu_n, var_n)``
(``var_n = softplus(.)``); the posterior over the task latent is their product (:func:`product_of_gaussians`),
regularised towards the prior ``N(0, I)`` by ``kl_weight * KL(q(z|c) || N(0, I))``. With no context, z is
drawn from the prior. s' is part of the context because our tasks change the dynamics, not only the reward.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adaptive_mbrl.baselines.networks import mlp
from adaptive_mbrl.baselines.presets import PEARLPreset
from adaptive_mbrl.baselines.sac import SAC

VAR_MIN = 1e-7


def product_of_gaussians(mu: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of N Gaussian factors along dim -2: ``mu, var [..., N, l] -> mu, var [..., l]``.

    ``var = 1 / sum_n 1 / var_n`` and ``mu = var * sum_n mu_n / var_n``, with each ``var_n`` clamped to at
    least 1e-7 first.
    """
    var = var.clamp(min=VAR_MIN)
    precision = var.reciprocal().sum(-2)
    post_var = precision.reciprocal()
    return post_var * (mu / var).sum(-2), post_var


def kl_to_standard_normal(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag var) || N(0, I)) = 0.5 sum (var + mu^2 - 1 - log var)``; ``[..., l] -> [...]`` (nats)."""
    return 0.5 * (var + mu * mu - 1.0 - var.log()).sum(-1)


def make_context(obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                 next_obs: torch.Tensor) -> torch.Tensor:
    """Context rows ``[obs, action, reward, next_obs]``: ``[..., o], [..., a], [...], [..., o] -> [..., 2o + a + 1]``."""
    return torch.cat((obs, action, reward.unsqueeze(-1), next_obs), dim=-1)


class ContextEncoder(nn.Module):
    """Per-transition encoder ``c [..., 2o + a + 1] -> (mu [..., l], var [..., l])`` with ``var = softplus``."""

    def __init__(self, context_dim: int, latent_dim: int, hidden: list[int],
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp(context_dim, hidden, 2 * latent_dim, device=device)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.net(context).chunk(2, dim=-1)
        return mu, F.softplus(raw)


class PEARLAgent(nn.Module):
    """Context encoder + SAC on ``[obs, z]``.

    Args:
        obs_dim, action_dim: the robot's observation and action sizes.
        preset: latent size, encoder, KL weight, SAC settings.
        device: torch device of every network.
    """

    def __init__(self, obs_dim: int, action_dim: int, preset: PEARLPreset,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.preset = preset
        self.obs_dim, self.action_dim, self.latent_dim = obs_dim, action_dim, preset.latent_dim
        self.context_dim = 2 * obs_dim + action_dim + 1
        self.encoder = ContextEncoder(self.context_dim, preset.latent_dim, preset.encoder_hidden, device=device)
        self.sac = SAC(obs_dim + preset.latent_dim, action_dim, preset.sac, device=device)
        self.encoder_optim = torch.optim.Adam(self.encoder.parameters(), lr=preset.encoder_lr)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def posterior(self, context: torch.Tensor | None, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, var)`` ``[T, l]`` from ``context [T, N, c]``; the prior N(0, I) when ``context`` is
        None or has N = 0 (then ``batch`` gives T)."""
        if context is None or context.shape[-2] == 0:
            t = batch if context is None else context.shape[0]
            zeros = torch.zeros(t, self.latent_dim, device=self.device)
            return zeros, torch.ones_like(zeros)
        mu, var = self.encoder(context)
        return product_of_gaussians(mu, var)

    @staticmethod
    def sample_z(mu: torch.Tensor, var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised ``z = mu + sqrt(var) * eps``; ``[..., l]``."""
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + var.sqrt() * eps

    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions ``[B, a]`` in (-1, 1) for ``obs [B, o]`` under latents ``z [B, l]``."""
        return self.sac.policy.sample(torch.cat((obs, z), -1), deterministic, generator)["action"]

    def update(self, context: torch.Tensor, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
               next_obs: torch.Tensor, done: torch.Tensor) -> dict[str, float]:
        """One meta-training gradient step over T tasks.

        Args:
            context: ``[T, N, c]`` context transitions per task.
            obs, next_obs: ``[T, B, o]``; action ``[T, B, a]``; reward, done ``[T, B]``: RL batch per task.

        The encoder is trained by the critic loss plus ``kl_weight * mean_T KL``; the policy and V see z
        detached (inside :meth:`SAC.update`).
        """
        mu, var = self.posterior(context)
        z = self.sample_z(mu, var)                                    # [T, l]
        kl = kl_to_standard_normal(mu, var).mean()
        t, b = obs.shape[:2]
        z_rows = z.unsqueeze(1).expand(t, b, self.latent_dim).reshape(t * b, -1)
        flat = lambda x: x.reshape(t * b, *x.shape[2:])  # noqa: E731
        stats = self.sac.update(flat(obs), flat(action), flat(reward), flat(next_obs), flat(done), z=z_rows,
                                aux_loss=self.preset.kl_weight * kl, aux_optim=self.encoder_optim)
        stats["kl"] = kl.item()
        stats["z_var"] = var.mean().item()
        return stats

    def optimizer_state(self) -> dict[str, dict]:
        return {**self.sac.optimizer_state(), "encoder": self.encoder_optim.state_dict()}

    def load_optimizer_state(self, state: dict[str, dict]) -> None:
        self.sac.load_optimizer_state(state)
        self.encoder_optim.load_state_dict(state["encoder"])
