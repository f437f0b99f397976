"""GrBAL (gradient-based adaptive learner, Nagabandi et al. 2019): a meta-trained prior ``theta`` adapted
at every control step by ``steps`` plain gradient steps on the latest M transitions.

``phi = theta - alpha (.) grad L(theta; window)``, recomputed from the prior every step (never
accumulated), so the model planned with is always "the prior, adapted to the last M transitions" as in
meta-training. ``alpha`` is ``config.learning_rate`` or, with ``config.learn_inner_lr`` (Meta-SGD), one
learned rate per parameter entry. The normalisers are the prior's and never change at run time.

With ``config.backtracking = B > 0`` a step that raises the loss on the window it was computed from is
halved (``phi = theta + 2^-k (phi - theta)``, k = 1..B) until it does not, and dropped (the prior) if
none helps. Meta-training never applies this; at run time it only acts on overshoots. Measured with
``benchmarks/adaptation_gain.py``: on half_cheetah bodies at 0.4-0.5x mass and damping, the unguarded step
made one seed's next-16 prediction loss thousands of times the prior's.

Ensembles (PETS-style, deterministic or probabilistic): every member adapts from the same window in one
batched call (the members are stacked in each weight; see :mod:`~adaptive_mbrl.adaptation.meta_losses`),
on the model's own loss (Gaussian NLL for a probabilistic model, MSE otherwise); the log-variance bounds
stay as meta-trained. Backtracking, if on, scales all members' steps together (on their summed window
loss). :meth:`GrBALAdapter.particle_step` rolls out the adapted members for trajectory sampling.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from adaptive_mbrl.adaptation.base import AdapterConfig
from adaptive_mbrl.adaptation.meta_adapter import MetaAdapter, StepFn
from adaptive_mbrl.adaptation.meta_losses import (InnerLR, grbal_member_errors, grbal_meta_loss, inner_names,
                                                  inner_update, model_params)
from adaptive_mbrl.adaptation.particle_steps import GroupedParticleStep, StepFnParticles
from adaptive_mbrl.models.dynamics import DynamicsModel, functional_loss, functional_predict
from adaptive_mbrl.models.particles import EnsembleParticleStep
from adaptive_mbrl.planning.rollout import ParticleStep


class InnerRates(nn.Module):
    """GrBAL's inner step size: a fixed scalar, or (Meta-SGD) a learned tensor per model parameter.

    Learned rates live in ``rates`` (an ``nn.ParameterDict``; ``.`` in parameter names becomes ``__``),
    initialised to ``init`` everywhere; they may become negative or differ per entry. There is one rate per
    entry of every parameter the inner step adapts (:func:`inner_names`: not a probabilistic model's
    log-variance bounds).

    Ensembles: the rates have the parameters' shapes, member axis included (``[E, in, out]``), so every
    member learns its own rates. Chosen over rates shared by the members because the members are
    independent learners (own initialisation, own segments in meta-training): with per-member rates an
    ensemble of E is exactly E GrBAL learners trained in one batched call, member ``e``'s meta-gradient
    touches only member ``e``'s prior and rates, and the members stay as diverse as their data makes them
    (the spread trajectory sampling relies on). It costs one more copy of the weights (E x a member's
    parameters), like the weights themselves, and nothing per control step.
    """

    def __init__(self, model: DynamicsModel, init: float, learn: bool) -> None:
        super().__init__()
        self.init = float(init)
        self.rates = nn.ParameterDict({
            name.replace(".", "__"): nn.Parameter(torch.full_like(p.detach(), self.init))
            for name, p in model_params(model).items() if name in inner_names(model)} if learn else {})

    @property
    def learned(self) -> bool:
        return len(self.rates) > 0

    def lr(self, detach: bool = False) -> InnerLR:
        """The step size for :func:`inner_update`: the scalar or ``{param name: rates [param shape]}``."""
        if not self.learned:
            return self.init
        return {k.replace("__", "."): (v.detach() if detach else v) for k, v in self.rates.items()}


class GrBALAdapter(MetaAdapter):
    """GrBAL at run time (:meth:`adapt` / :meth:`predict`) and in meta-training (:meth:`meta_loss`).

    Args:
        model: the prior (a single network or an ensemble; its current weights are what :meth:`reset`
            restores).
        config: ``window`` (M), ``steps`` (inner steps), ``learning_rate`` (alpha, or the Meta-SGD
            initial value), ``learn_inner_lr``.
    """

    def __init__(self, model: DynamicsModel, config: AdapterConfig) -> None:
        super().__init__(model, config)
        self.learned = InnerRates(model, config.learning_rate, config.learn_inner_lr).to(model.device)
        self.adapted = copy.deepcopy(model).requires_grad_(False)
        self.step_scale = 0.0
        self.reset()

    @property
    def _inner_mse(self) -> bool:
        """Whether the inner step is on the squared error of the mean (``inner_loss: mse``)."""
        return self.config.inner_loss == "mse"

    def reset(self) -> None:
        """Back to the prior: the adapted copy takes the model's current parameters and normalisers."""
        self.adapted.load_state_dict(self.model.state_dict())
        self.step_scale = 0.0

    def adapt(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> None:
        """``phi`` from the prior and the window ``[m, o], [m, a], [m, o]`` (oldest first); ``m = 0`` or
        ``steps = 0`` gives the prior."""
        if obs.shape[0] == 0 or self.config.steps == 0:
            self.reset()
            return
        with torch.inference_mode(False), torch.enable_grad():
            theta = {k: v.detach().clone() for k, v in model_params(self.model).items()}
            phi = inner_update(self.model, theta, obs.clone(), action.clone(), next_obs.clone(),
                               self.learned.lr(detach=True), self.config.steps, mse=self._inner_mse)
            phi = {name: value.detach() for name, value in phi.items()}
            self.step_scale = 1.0
            if self.config.backtracking:
                phi = self._backtrack(theta, phi, obs.clone(), action.clone(), next_obs.clone())
        with torch.no_grad():
            for name, value in phi.items():
                self.adapted.get_parameter(name).copy_(value)

    def _backtrack(self, theta: dict[str, Tensor], phi: dict[str, Tensor], obs: Tensor, action: Tensor,
                   next_obs: Tensor) -> dict[str, Tensor]:
        """Shrink a step that raises the window loss (see the module docstring); sets :attr:`step_scale`
        to the share of the step kept (1, 1/2, ..., or 0 for the prior)."""
        with torch.no_grad():
            def window(params: dict[str, Tensor]) -> float:
                return functional_loss(self.model, params, obs, action, next_obs, mse=self._inner_mse).item()

            before = window(theta)
            if window(phi) <= before:
                return phi
            step = {name: phi[name] - theta[name] for name in theta}
            for k in range(1, self.config.backtracking + 1):
                trial = {name: theta[name] + 0.5 ** k * step[name] for name in theta}
                if window(trial) <= before:
                    self.step_scale = 0.5 ** k
                    return trial
        self.step_scale = 0.0
        return theta

    def predict(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.adapted.predict(obs, action)

    def adapted_params(self) -> dict[str, Tensor]:
        """The current ``phi`` by parameter name (views of the adapted copy's weights)."""
        return {name: p for name, p in self.adapted.named_parameters()}

    def particle_step(self) -> ParticleStep:
        """The adapted members ``phi`` as a trajectory-sampling step (no copy: a view of the adapted model;
        build it after :meth:`adapt`). Particle ``p`` on member ``k`` predicts (or samples) with member
        ``k``'s adapted weights."""
        return EnsembleParticleStep(self.adapted)

    def member_errors(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int) -> Tensor:
        return grbal_member_errors(self.model, obs, act, next_obs, past, self.learned.lr(detach=True),
                                   self.config.steps, self._inner_mse)

    def meta_loss(self, obs: Tensor, act: Tensor, next_obs: Tensor, past: int, first_order: bool = False,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return grbal_meta_loss(self.model, obs, act, next_obs, past, self.learned.lr(), self.config.steps,
                               first_order, self._inner_mse)

    @classmethod
    def batch_predict(cls, adapters: Sequence["GrBALAdapter"]) -> StepFn:
        """Rows of ``[E, ..., o]`` predicted with each adapter's own ``phi`` (``torch.func.vmap`` over E)."""
        model = adapters[0].model
        names = list(adapters[0].adapted_params())
        stacked = {n: torch.stack([a.adapted_params()[n].detach() for a in adapters]) for n in names}

        def one(params: dict[str, Tensor], obs: Tensor, act: Tensor) -> Tensor:
            return functional_predict(model, params, obs, act)

        batched = torch.func.vmap(one)
        return lambda obs, act: batched(stacked, obs, act)

    @classmethod
    def batch_particle_step(cls, adapters: Sequence["GrBALAdapter"]) -> ParticleStep:
        """A trajectory-sampling step for ``B = len(adapters)`` environments: row ``b`` rolls out
        ``adapters[b]``'s adapted members (their ``phi`` stacked once per call, ``[B, E, ...]``). A single
        deterministic network goes through :meth:`batch_predict` (its numerics unchanged)."""
        model = adapters[0].model
        if model.ensemble_size == 1 and not model.probabilistic:
            return StepFnParticles(cls.batch_predict(adapters))
        names = inner_names(model)
        stacked = {n: torch.stack([a.adapted.get_parameter(n).detach() for a in adapters]) for n in names}
        return GroupedParticleStep(model, params=stacked)

