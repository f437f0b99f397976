"""Shared test set-up: the slow learning-check tier runs after every fast test."""
import os
import sys

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# MuJoCo reads MUJOCO_GL once, at its first import (test modules import it while being collected):
# offscreen rendering on a display-less Linux needs EGL (see adaptive_mbrl/rendering.py).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run tests marked ``slow`` (learning checks with small budgets) last, as their own tier."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(scope="session")
def tiny_cartpole_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint of an untrained 1x16 cart-pole model with a small CEM planner (fast, deterministic):
    enough to exercise everything that loads and runs checkpoints without training."""
    from adaptive_mbrl.config import from_dict, to_dict
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import ControllerPreset
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    preset = from_dict(ControllerPreset, {
        "name": "tiny_mb", "model": {"hidden_sizes": [16]}, "adapter": {"kind": "none", "window": 4},
        "planner": {"kind": "cem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4}}, source="test")
    model = DynamicsModel(5, 1, preset.model, seed=0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny_mb.pt"
    return save_checkpoint(path, robot="cartpole", obs_dim=5, action_dim=1, preset=to_dict(preset),
                           model_state=model.state_dict())


@pytest.fixture(scope="session")
def tiny_pearl_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint of an untrained tiny cart-pole PEARL agent (seeded weights): its encoder maps a context
    to another posterior than the prior, enough to see whether a controller got one."""
    import torch

    from adaptive_mbrl.baselines.pearl import PEARLAgent
    from adaptive_mbrl.baselines.presets import PEARLPreset, SACConfig
    from adaptive_mbrl.config import to_dict
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    preset = PEARLPreset(name="tiny", encoder_hidden=[16], context_window=8, sac=SACConfig(hidden_sizes=[16]))
    torch.manual_seed(0)
    agent = PEARLAgent(5, 1, preset)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny_pearl.pt"
    return save_checkpoint(path, robot="cartpole", obs_dim=5, action_dim=1, preset=to_dict(preset),
                           model_state=agent.state_dict())
