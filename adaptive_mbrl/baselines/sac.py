"""Soft actor-critic, version 1 (Haarnoja et al. 2018, with a state-value network), as PEARL uses it.

Networks: Q1, Q2 on ``(s, a)``, V and a Polyak-averaged target V on ``s``, a tanh-Gaussian policy on ``s``.
For PEARL, ``s`` is ``[obs, z]``: the critics' gradient flows into z (and so into the context encoder) while
V, the V target and the policy see z detached. Losses (batch means):

* ``Q_i(s, a) -> r * reward_scale + gamma * (1 - done) * V_target(s')``          (:func:`q_target`)
* ``V(s) -> min_i Q_i(s, a~pi) - alpha * log pi(a|s)``                           (:func:`v_target`)
* policy: ``alpha * log pi(a|s) - min_i Q_i(s, a~pi)`` plus ``policy_reg * (mean^2 + log_std^2)``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from adaptive_mbrl.baselines.networks import QNetwork, TanhGaussianPolicy, VNetwork
from adaptive_mbrl.baselines.presets import SACConfig


def q_target(reward: torch.Tensor, done: torch.Tensor, next_value: torch.Tensor, gamma: float,
             reward_scale: float) -> torch.Tensor:
    """Soft Q target ``r * reward_scale + gamma * (1 - done) * V_target(s')``; all ``[B]``."""
    return reward * reward_scale + gamma * (1.0 - done.float()) * next_value


def v_target(q1: torch.Tensor, q2: torch.Tensor, log_prob: torch.Tensor, alpha: float) -> torch.Tensor:
    """Soft V target ``min(Q1, Q2) - alpha * log pi``; all ``[B]``."""
    return torch.minimum(q1, q2) - alpha * log_prob


class SAC(nn.Module):
    """SAC v1 networks and their update.

    Args:
        obs_dim: size of the policy / critic state input (observation plus latent for PEARL).
        action_dim: action size (actions in (-1, 1)).
        config: network sizes, step sizes, discount, reward scale, temperature.
        device: torch device of every network.
    """

    def __init__(self, obs_dim: int, action_dim: int, config: SACConfig,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = config
        self.obs_dim, self.action_dim = obs_dim, action_dim
        hidden = config.hidden_sizes
        self.policy = TanhGaussianPolicy(obs_dim, action_dim, hidden, device=device)
        self.q1 = QNetwork(obs_dim, action_dim, hidden, device=device)
        self.q2 = QNetwork(obs_dim, action_dim, hidden, device=device)
        self.v = VNetwork(obs_dim, hidden, device=device)
        self.v_target = copy.deepcopy(self.v)
        self.v_target.requires_grad_(False)
        lr = config.learning_rate
        self.q_optim = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.v_optim = torch.optim.Adam(self.v.parameters(), lr=lr)
        self.policy_optim = torch.optim.Adam(self.policy.parameters(), lr=lr)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def update(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
               done: torch.Tensor, z: torch.Tensor | None = None, aux_loss: torch.Tensor | None = None,
               aux_optim: torch.optim.Optimizer | None = None) -> dict[str, float]:
        """One gradient step on every network from a batch ``obs [B, o]``, ``action [B, a]``, ``reward [B]``,
        ``next_obs [B, o]``, ``done [B]``.

        PEARL passes ``z [B, l]`` (attached to its encoder's graph; appended to obs and next_obs) and an
        ``aux_loss`` (the weighted KL) that is added to the critic loss; ``aux_optim`` (the encoder's) then
        steps together with the critics. Without ``z`` the observations are the whole state.

        Returns:
            plain floats ``q_loss``, ``v_loss``, ``policy_loss``, ``log_prob`` (mean), ``q`` (mean Q1).
        """
        cfg = self.config
        if z is not None:
            z_free = z.detach()
            s_q, s, s_next = torch.cat((obs, z), -1), torch.cat((obs, z_free), -1), torch.cat((next_obs, z_free), -1)
        else:
            s_q = s = obs
            s_next = next_obs
        # critics (their gradient reaches z and the encoder through s_q)
        with torch.no_grad():
            target_q = q_target(reward, done, self.v_target(s_next), cfg.gamma, cfg.reward_scale)
        q1, q2 = self.q1(s_q, action), self.q2(s_q, action)
        q_loss = ((q1 - target_q) ** 2).mean() + ((q2 - target_q) ** 2).mean()
        if aux_optim is not None:
            aux_optim.zero_grad()
        self.q_optim.zero_grad()
        (q_loss + aux_loss if aux_loss is not None else q_loss).backward()
        self.q_optim.step()
        if aux_optim is not None:
            aux_optim.step()
        # value and policy (z detached)
        sample = self.policy.sample(s)
        q_new = torch.minimum(self.q1(s, sample["action"]), self.q2(s, sample["action"]))
        with torch.no_grad():
            target_v = v_target(q_new, q_new, sample["log_prob"], cfg.alpha)
        v_loss = ((self.v(s) - target_v) ** 2).mean()
        self.v_optim.zero_grad()
        v_loss.backward()
        self.v_optim.step()
        policy_loss = (cfg.alpha * sample["log_prob"] - q_new).mean()
        policy_loss = policy_loss + cfg.policy_reg * ((sample["mean"] ** 2).mean() + (sample["log_std"] ** 2).mean())
        self.policy_optim.zero_grad()
        policy_loss.backward()
        self.policy_optim.step()
        self.soft_update()
        return {"q_loss": q_loss.item(), "v_loss": v_loss.item(), "policy_loss": policy_loss.item(),
                "log_prob": sample["log_prob"].mean().item(), "q": q1.mean().item()}

    @torch.no_grad()
    def soft_update(self) -> None:
        """``V_target <- (1 - tau) V_target + tau V``."""
        for target, source in zip(self.v_target.parameters(), self.v.parameters()):
            target.lerp_(source, self.config.tau)

    def optimizer_state(self) -> dict[str, dict]:
        """State of the three Adam optimizers (for resuming)."""
        return {"q": self.q_optim.state_dict(), "v": self.v_optim.state_dict(), "policy": self.policy_optim.state_dict()}

    def load_optimizer_state(self, state: dict[str, dict]) -> None:
        self.q_optim.load_state_dict(state["q"])
        self.v_optim.load_state_dict(state["v"])
        self.policy_optim.load_state_dict(state["policy"])
