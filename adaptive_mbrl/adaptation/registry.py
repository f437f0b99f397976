"""Build an adapter from its config: the one place that maps ``adapter.kind`` to an adapter class.

The adapter modules import only :mod:`~adaptive_mbrl.adaptation.base` (and the meta-learning helpers);
this module imports them all, so nothing inside ``adaptation/`` imports in a circle.
"""
from __future__ import annotations

from adaptive_mbrl.adaptation.actuator_gains import ActuatorGainAdapter
from adaptive_mbrl.adaptation.base import Adapter, AdapterConfig, NoAdaptation
from adaptive_mbrl.adaptation.finetune import FinetuneAdapter
from adaptive_mbrl.adaptation.grbal import GrBALAdapter
from adaptive_mbrl.adaptation.rebal import ReBALAdapter
from adaptive_mbrl.models.dynamics import DynamicsModel

ADAPTERS: dict[str, type[Adapter]] = {"none": NoAdaptation, "finetune": FinetuneAdapter, "grbal": GrBALAdapter,
                                      "rebal": ReBALAdapter, "actuator_gains": ActuatorGainAdapter}


def make_adapter(model: DynamicsModel, config: AdapterConfig) -> Adapter:
    """Build the adapter named by ``config.kind`` around ``model``.

    Raises:
        ValueError: an unknown kind (the message lists the allowed ones), or a setting that belongs to
            another kind (``backtracking``, ``inner_loss: mse``: grbal only; ``context_gate``, ``encoder_per_member``: rebal only;
            ``finetune_steps``: actuator_gains only).
    """
    if config.kind not in ADAPTERS:
        raise ValueError(f"adapter {config.kind!r} is not available; allowed: {', '.join(sorted(ADAPTERS))}")
    if config.backtracking and config.kind != "grbal":
        raise ValueError(f"adapter.backtracking applies to adapter.kind 'grbal' only (it shrinks GrBAL's inner "
                         f"step), got kind {config.kind!r}")
    if config.inner_loss != "model" and config.kind != "grbal":
        raise ValueError(f"adapter.inner_loss {config.inner_loss!r} applies to adapter.kind 'grbal' only (the loss "
                         f"of GrBAL's inner step); leave it at 'model' for kind {config.kind!r}")
    if config.context_gate and config.kind != "rebal":
        raise ValueError(f"adapter.context_gate applies to adapter.kind 'rebal' only (it gates a recurrent "
                         f"context), got kind {config.kind!r}")
    if config.encoder_per_member and config.kind != "rebal":
        raise ValueError(f"adapter.encoder_per_member applies to adapter.kind 'rebal' only (one recurrent encoder "
                         f"per ensemble member), got kind {config.kind!r}")
    if config.finetune_steps and config.kind != "actuator_gains":
        raise ValueError(f"adapter.finetune_steps applies to adapter.kind 'actuator_gains' only (weight updates "
                         f"on top of the gains; kind 'finetune' is plain fine-tuning with adapter.steps), got "
                         f"kind {config.kind!r}")
    return ADAPTERS[config.kind](model, config)
