"""Soft actor-critic, version 1 (Haarnoja et al. 2018, with a state-value network), as PEARL uses it.

Networks: twin critics Q1, Q2 on ``(s, a)``, V and a Polyak-averaged target V on ``s``, a tanh-Gaussian
policy on ``s``. For PEARL, ``s`` is ``[obs, z]``: the critics' gradient flows into z (and so into the context
encoder) while V, the V target and the policy see z detached. Losses (batch means):

* ``Q_i(s, a) -> r * reward_scale + gamma * (1 - done) * V_target(s')``          (:func:`q_target`)
* ``V(s) -> min_i Q_i(s, a~pi) - alpha * log pi(a|s)``                           (:func:`v_target`)
* policy: ``alpha * log pi(a|s) - min_i Q_i(s, a~pi)`` plus ``policy_reg * (mean^2 + log_std^2)``.

Order of one update: critic step (its loss summed over Q1, Q2), then the V and policy losses with the
*updated* critics, one step each, then the Polyak step of the target V.

Layout, for speed (the math is the above): Q1, Q2 are one two-member :class:`EnsembleMLP` (``self.q``,
weights ``[2, in, out]``: one batched matmul per layer); V and its target are one :class:`PolyakPairMLP`
(``self.v``: the target is a buffer, stacked behind V's weights at call time so V(s) and V_target(s') take
one batched matmul per layer, and its slot is never differentiated). No work feeds no loss: the target
is evaluated once per update and costs no backward matmul, and the policy loss sees the critics through
detached weights, so its backward computes the critics' input gradients (towards the action) but no
gradients for their weights. Checkpoints of the earlier layout (separate ``q1``, ``q2``, ``v``,
``v_target`` networks) are refused with a clear error.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptive_mbrl.baselines.ensemble_layers import EnsembleMLP, PolyakPairMLP
from adaptive_mbrl.baselines.networks import TanhGaussianPolicy
from adaptive_mbrl.baselines.presets import SACConfig

OLD_LAYOUT = ("q1.", "q2.", "v.net.", "v_target.")
"""Key prefixes (below the SAC module) of the earlier layout with one module per network."""


def q_target(reward: torch.Tensor, done: torch.Tensor, next_value: torch.Tensor, gamma: float,
             reward_scale: float) -> torch.Tensor:
    """Soft Q target ``r * reward_scale + gamma * (1 - done) * V_target(s')``; all ``[B]``."""
    return reward * reward_scale + gamma * (1.0 - done.float()) * next_value


def v_target(q1: torch.Tensor, q2: torch.Tensor, log_prob: torch.Tensor, alpha: float) -> torch.Tensor:
    """Soft V target ``min(Q1, Q2) - alpha * log pi``; all ``[B]``."""
    return torch.minimum(q1, q2) - alpha * log_prob


class SAC(nn.Module):
    """SAC v1 networks and their update.

    Attributes: ``policy`` (:class:`TanhGaussianPolicy`), ``q`` (Q1 and Q2 as a two-member
    :class:`EnsembleMLP`, see :meth:`q_values`), ``v`` (V and its target, a :class:`PolyakPairMLP`).

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
        self.q = EnsembleMLP(2, obs_dim + action_dim, hidden, 1, device=device)
        self.v = PolyakPairMLP(obs_dim, hidden, 1, device=device)
        lr = config.learning_rate
        self.q_optim = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.v_optim = torch.optim.Adam(self.v.parameters(), lr=lr)   # the target V is a buffer: not trained
        self.policy_optim = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.register_load_state_dict_pre_hook(_refuse_old_layout)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def q_values(self, state: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``(Q1, Q2) [2, B]`` at ``state [B, s]``, ``action [B, a]``; ``frozen``: through detached weights
        (gradients reach the inputs only)."""
        return self.q(torch.cat((state, action), -1), detach_params=frozen).squeeze(-1)

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
        # V(s) (kept for its loss; V's weights do not change before its step) and V_target(s'), together
        v_pred, v_next = (out.squeeze(-1) for out in self.v.pair(s, s_next))
        # critics (their gradient reaches z and the encoder through s_q)
        target_q = q_target(reward, done, v_next, cfg.gamma, cfg.reward_scale)
        q_pred = self.q_values(s_q, action)                                        # [2, B]
        q_loss = ((q_pred - target_q) ** 2).mean(-1).sum()
        if aux_optim is not None:
            aux_optim.zero_grad()
        self.q_optim.zero_grad()
        (q_loss + aux_loss if aux_loss is not None else q_loss).backward()
        self.q_optim.step()
        if aux_optim is not None:
            aux_optim.step()
        # value and policy (z detached), against the updated critics with frozen weights
        sample = self.policy.sample(s)
        q_new = self.q_values(s, sample["action"], frozen=True)
        q_min = torch.minimum(q_new[0], q_new[1])
        with torch.no_grad():
            target_v = v_target(q_new[0], q_new[1], sample["log_prob"], cfg.alpha)
        v_loss = ((v_pred - target_v) ** 2).mean()
        policy_loss = (cfg.alpha * sample["log_prob"] - q_min).mean()
        policy_loss = policy_loss + cfg.policy_reg * ((sample["mean"] ** 2).mean() + (sample["log_std"] ** 2).mean())
        self.v_optim.zero_grad()
        self.policy_optim.zero_grad()
        (v_loss + policy_loss).backward()   # disjoint parameters: each loss gets its own gradient
        self.v_optim.step()
        self.policy_optim.step()
        self.soft_update()
        return {"q_loss": q_loss.item(), "v_loss": v_loss.item(), "policy_loss": policy_loss.item(),
                "log_prob": sample["log_prob"].mean().item(), "q": q_pred[0].mean().item()}

    def soft_update(self) -> None:
        """``V_target <- (1 - tau) V_target + tau V``."""
        self.v.polyak_(self.config.tau)

    def optimizer_state(self) -> dict[str, dict]:
        """State of the three Adam optimizers (for resuming)."""
        return {"q": self.q_optim.state_dict(), "v": self.v_optim.state_dict(), "policy": self.policy_optim.state_dict()}

    def load_optimizer_state(self, state: dict[str, dict]) -> None:
        self.q_optim.load_state_dict(state["q"])
        self.v_optim.load_state_dict(state["v"])
        self.policy_optim.load_state_dict(state["policy"])


def _refuse_old_layout(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load-state pre-hook: a clear error for weights saved in the earlier one-module-per-network layout."""
    old = sorted({k[len(prefix):].split(".")[0] for k in state_dict
                  if k.startswith(prefix) and k[len(prefix):].startswith(OLD_LAYOUT)})
    if old:
        raise ValueError(f"cannot load SAC weights saved in the earlier layout (networks {', '.join(old)} at "
                         f"{prefix or 'the top level'!r}: separate q1, q2, v, v_target modules, from before the "
                         "twin critics became one ensemble); retrain the PEARL run: its checkpoints and run folder "
                         "cannot be loaded or resumed by this version")
