"""Typed, strictly validated configuration: YAML files loaded into dataclasses."""
from adaptive_mbrl.config.schema import ConfigError, bounded, from_dict, load_yaml, to_dict

__all__ = ["ConfigError", "bounded", "from_dict", "load_yaml", "to_dict"]
