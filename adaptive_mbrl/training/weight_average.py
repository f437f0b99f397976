"""An exponential moving average of meta-trained weights (Polyak averaging), for collection and checkpoints.

Meta-updates take small batches (``meta.meta_batch`` segments), so the last iterate of a round is a noisy
point: a seed's closed-loop return moved by 100-250 from one round's model to the next in the held-out
half_cheetah runs. With ``meta.average_decay = d > 0`` the meta-training loop keeps, after every
meta-update, ``avg <- d * avg + (1 - d) * current`` over the prior's parameters, its (fixed) normaliser
statistics and the adapter's learned parts (Meta-SGD rates, ReBAL's encoder); the average is what
collects the next round's data and what ``model.pt`` holds, while Adam keeps stepping the raw weights
(saved as ``model_last.pt``). ``d = 0.999`` averages over about the last 1000 updates.

Built on ``torch.optim.swa_utils.AveragedModel`` (with buffers, so the averaged copy always carries the
same normalisers as the live model: averaging identical values returns them unchanged).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from adaptive_mbrl.adaptation.meta_adapter import MetaAdapter
from adaptive_mbrl.models.dynamics import DynamicsModel


class WeightAverage:
    """EMA of ``model`` and ``adapter.learned`` (the live modules stay the ones being optimised).

    Args:
        model: the prior being meta-trained.
        adapter: its meta-adapter (``adapter.learned`` is averaged too).
        decay: d in ``(0, 1)``; the first :meth:`update` copies the live weights.
    """

    def __init__(self, model: DynamicsModel, adapter: MetaAdapter, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"meta.average_decay must be in (0, 1) to average weights, got {decay}")
        self.live = nn.ModuleDict({"model": model, "adapter": adapter.learned})
        self.average = AveragedModel(self.live, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def updates(self) -> int:
        """Meta-updates averaged so far (0: the average is still the live model)."""
        return int(self.average.n_averaged)

    @torch.no_grad()
    def update(self) -> None:
        """Fold the live weights in (call after every optimiser step)."""
        self.average.update_parameters(self.live)

    @property
    def model(self) -> DynamicsModel:
        """The averaged prior (the live model until the first :meth:`update`)."""
        return self.average.module["model"] if self.updates else self.live["model"]

    def adapter_state(self) -> dict[str, Tensor]:
        """The averaged adapter's learned parts, in ``MetaAdapter.state_dict`` form."""
        source = self.average.module["adapter"] if self.updates else self.live["adapter"]
        return {k: v.detach().clone() for k, v in source.state_dict().items()}

    def state_dict(self) -> dict[str, Tensor]:
        """Everything needed to continue the average after a resume (weights and the update count)."""
        return self.average.state_dict()

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.average.load_state_dict(dict(state))
