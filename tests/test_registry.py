"""adaptation.registry: every adapter kind of AdapterConfig maps to its class; unknown kinds are refused."""
from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from adaptive_mbrl.adaptation.actuator_gains import ActuatorGainAdapter
from adaptive_mbrl.adaptation.base import AdapterConfig, AdapterKind, NoAdaptation
from adaptive_mbrl.adaptation.finetune import FinetuneAdapter
from adaptive_mbrl.adaptation.grbal import GrBALAdapter
from adaptive_mbrl.adaptation.rebal import ReBALAdapter
from adaptive_mbrl.adaptation.registry import ADAPTERS, make_adapter
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig


def test_every_configurable_kind_has_its_class() -> None:
    assert set(ADAPTERS) == set(typing.get_args(AdapterKind))
    assert ADAPTERS == {"none": NoAdaptation, "finetune": FinetuneAdapter, "grbal": GrBALAdapter,
                        "rebal": ReBALAdapter, "actuator_gains": ActuatorGainAdapter}


def test_make_adapter_builds_every_kind_without_importing_anything_first() -> None:
    """A fresh interpreter that imports only the registry builds every kind (no adapter module has to be
    imported first to register itself)."""
    script = ("from adaptive_mbrl.adaptation.registry import make_adapter\n"
              "from adaptive_mbrl.adaptation.base import AdapterConfig\n"
              "from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig\n"
              "model = DynamicsModel(3, 2, ModelConfig(hidden_sizes=[8], context_dim=2))\n"
              "plain = DynamicsModel(3, 2, ModelConfig(hidden_sizes=[8]))\n"
              "for kind in ('none', 'finetune', 'grbal', 'rebal', 'actuator_gains'):\n"
              "    built = make_adapter(plain if kind == 'actuator_gains' else model, AdapterConfig(kind=kind))\n"
              "    print(type(built).__name__)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    kinds = ("none", "finetune", "grbal", "rebal", "actuator_gains")
    assert out.split() == [ADAPTERS[kind].__name__ for kind in kinds]


def test_unknown_adapter_kind_lists_the_allowed_ones() -> None:
    model = DynamicsModel(3, 2, ModelConfig(hidden_sizes=[8]))
    with pytest.raises(ValueError, match="'warp'") as info:
        make_adapter(model, AdapterConfig(kind="warp"))  # type: ignore[arg-type]
    assert "allowed: actuator_gains, finetune, grbal, none, rebal" in str(info.value)
