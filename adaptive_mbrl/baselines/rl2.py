"""RL² (Duan et al. 2016): a recurrent Gaussian policy whose memory is the adaptation.

Input at step t: ``[obs_t, a_{t-1}, r_{t-1}, d_{t-1}]`` where ``d_{t-1} = 1`` when ``obs_t`` starts a new
episode of the same trial (the previous step ended an episode); at the start of a trial the previous
action, reward and flag are zero and the hidden state is zero. The hidden state carries across the
episodes of a trial and is reset between trials (new task).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from adaptive_mbrl.baselines.presets import RL2Preset


def rl2_input(obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
              prev_done: torch.Tensor) -> torch.Tensor:
    """``[..., o], [..., a], [...], [...] -> [..., o + a + 2]``."""
    return torch.cat((obs, prev_action, prev_reward.unsqueeze(-1), prev_done.float().unsqueeze(-1)), dim=-1)


class RL2Policy(nn.Module):
    """GRU policy and value: ``x [T, B, o + a + 2], h [1, B, H] -> mean [T, B, a], value [T, B], h``.

    Actions are ``N(mean, exp(log_std)^2)`` with a learned state-independent ``log_std``; the environment
    receives them clipped to [-1, 1] (log-probabilities are of the unclipped sample, as in standard PPO).
    """

    def __init__(self, obs_dim: int, action_dim: int, preset: RL2Preset,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.preset = preset
        self.obs_dim, self.action_dim, self.hidden_size = obs_dim, action_dim, preset.hidden_size
        self.input_dim = obs_dim + action_dim + 2
        self.embed = nn.Sequential(nn.Linear(self.input_dim, preset.embed_size, device=device), nn.Tanh())
        self.gru = nn.GRU(preset.embed_size, preset.hidden_size, device=device)
        self.mean_head = nn.Linear(preset.hidden_size, action_dim, device=device)
        self.value_head = nn.Linear(preset.hidden_size, 1, device=device)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(preset.init_log_std), device=device))
        with torch.no_grad():  # small initial actions, as usual for PPO policies
            self.mean_head.weight.mul_(0.01)
            self.mean_head.bias.zero_()

    @property
    def device(self) -> torch.device:
        return self.log_std.device

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero hidden state ``[1, B, H]`` (the start of a trial)."""
        return torch.zeros(1, batch, self.hidden_size, device=self.device)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, h = self.gru(self.embed(x), h)
        return self.mean_head(out), self.value_head(out).squeeze(-1), h

    def log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Gaussian log-density ``[..., a] -> [...]``."""
        log_std = self.log_std.expand_as(mean)
        return (-0.5 * ((action - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the action distribution (scalar, nats)."""
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()

    @torch.no_grad()
    def step(self, x: torch.Tensor, h: torch.Tensor, deterministic: bool = False,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One control step for B trials: ``x [B, o + a + 2], h [1, B, H]`` -> ``action [B, a]`` (unclipped),
        ``log_prob [B]``, ``value [B]``, ``h [1, B, H]``."""
        mean, value, h = self(x.unsqueeze(0), h)
        mean, value = mean[0], value[0]
        if deterministic:
            action = mean
        else:
            noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
            action = mean + self.log_std.exp() * noise
        return {"action": action, "log_prob": self.log_prob(mean, action), "value": value, "h": h}
