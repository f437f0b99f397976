"""Online adapters: how a controller turns its latest transitions into the model it plans with."""
from adaptive_mbrl.adaptation.base import Adapter, AdapterConfig, NoAdaptation
from adaptive_mbrl.adaptation.registry import ADAPTERS, make_adapter

__all__ = ["ADAPTERS", "Adapter", "AdapterConfig", "NoAdaptation", "make_adapter"]
