"""MB+DE: dynamic evaluation, plain gradient fine-tuning on the latest transitions at run time."""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from adaptive_mbrl.adaptation.base import Adapter, AdapterConfig
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.planning.rollout import ParticleStep


class FinetuneAdapter(Adapter):
    """``steps`` gradient steps on the last M transitions every control step.

    The model starts each episode from the trained weights (restored by :meth:`reset`). By default the
    updates accumulate through the episode (dynamic evaluation); ``reset_each_step`` restarts every step
    from the trained weights instead. The normalisers stay as trained.

    Each step minimises the model's own training loss on the window (:meth:`DynamicsModel.loss`: MSE, or
    for a probabilistic model the Gaussian NLL plus the log-variance bound penalty); an ensemble's members
    are all updated by that one batched loss (summed over members, so each member gets its own gradient).
    The elites chosen in training stay the elites.
    """

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        super().__init__(model, config)
        self.adapted = copy.deepcopy(model)
        self._prior = {k: v.detach().clone() for k, v in model.state_dict().items()}
        params = [p for p in self.adapted.parameters() if p.requires_grad]
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.learning_rate)
        else:
            self.optimizer = torch.optim.SGD(params, lr=config.learning_rate)

    def reset(self) -> None:
        self.adapted.load_state_dict(self._prior)
        self.optimizer.state.clear()

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        if self.config.reset_each_step:
            self.reset()
        with torch.enable_grad(), torch.inference_mode(False):
            for _ in range(self.config.steps):
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.adapted.loss(obs.clone(), action.clone(), next_obs.clone())
                loss.backward()
                self.optimizer.step()

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.adapted.predict(obs, action)

    def particle_step(self) -> ParticleStep:
        """The fine-tuned copy's members as particles (:class:`~adaptive_mbrl.models.EnsembleParticleStep`)."""
        return EnsembleParticleStep(self.adapted)
