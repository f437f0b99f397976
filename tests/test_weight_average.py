"""weight_average: the EMA arithmetic, and meta-training with meta.average_decay (files, checkpoint, resume)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptive_mbrl.config import from_dict
from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.training.checkpoint import load_checkpoint
from adaptive_mbrl.training.meta_train import build_meta_adapter, meta_train
from adaptive_mbrl.training.train_model import RunSettings
from adaptive_mbrl.training.weight_average import WeightAverage
from test_meta_train import RANDOM_STEPS, ROUND_STEPS, _tiny


def _preset(kind: str, decay: float, iterations: int = 1) -> ControllerPreset:
    data = _tiny(kind, iterations=iterations)
    data["meta"]["average_decay"] = decay
    return from_dict(ControllerPreset, data, source="test")


def test_average_is_the_exponential_moving_average_of_the_live_weights() -> None:
    preset = _preset("rebal", 0.9)
    model = DynamicsModel(5, 1, preset.model, seed=0)
    adapter = build_meta_adapter(model, preset)
    with torch.no_grad():
        model.obs_norm.mean.fill_(3.0)  # normaliser statistics are carried over unchanged
    average = WeightAverage(model, adapter, 0.9)
    assert average.model is model, "before any update the average is the live model"
    weight, head = model.layers[0].weight, adapter.learned.head.bias
    values = [1.0, 2.0, 4.0]
    for value in values:
        with torch.no_grad():
            weight.fill_(value)
            head.fill_(-value)
        average.update()
    expected = values[0]  # the first update copies, then avg <- 0.9 avg + 0.1 current
    for value in values[1:]:
        expected = 0.9 * expected + 0.1 * value
    assert average.updates == 3
    torch.testing.assert_close(average.model.layers[0].weight, torch.full_like(weight, expected))
    torch.testing.assert_close(average.adapter_state()["head.bias"], torch.full_like(head, -expected))
    assert torch.equal(average.model.obs_norm.mean, model.obs_norm.mean)
    assert torch.equal(weight, torch.full_like(weight, 4.0)), "the live weights are left alone"


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_open_interval_is_refused(decay: float) -> None:
    preset = _preset("grbal", 0.0)
    model = DynamicsModel(5, 1, preset.model, seed=0)
    with pytest.raises(ValueError, match=r"meta.average_decay must be in \(0, 1\)"):
        WeightAverage(model, build_meta_adapter(model, preset), decay)


def test_preset_refuses_a_decay_of_one() -> None:
    data = _tiny("rebal")
    data["meta"]["average_decay"] = 1.0
    with pytest.raises(ValueError, match="average_decay"):
        from_dict(ControllerPreset, data, source="test")


@pytest.mark.parametrize("kind", ["grbal", "rebal"])
def test_meta_train_checkpoints_the_average_and_keeps_the_last_iterate(tmp_path: Path, kind: str) -> None:
    run_dir = tmp_path / "run"
    ckpt = meta_train(_preset(kind, 0.9), RunSettings("cartpole", "weak_motor_train", seed=0), run_dir,
                      progress=False)
    assert {"model.pt", "model_last.pt", "average.pt"} <= {p.name for p in run_dir.iterdir()}
    averaged, last = load_checkpoint(ckpt), load_checkpoint(run_dir / "model_last.pt")
    assert (averaged["meta"]["weights"], last["meta"]["weights"]) == ("average", "last")
    weight = "layers.0.weight"
    assert not torch.equal(averaged["model_state"][weight], last["model_state"][weight])
    for key in ("obs_norm.mean", "delta_norm.std"):
        assert torch.equal(averaged["model_state"][key], last["model_state"][key]), key
    assert any(not torch.equal(averaged["adapter_state"][k], last["adapter_state"][k])
               for k in averaged["adapter_state"])
    # The average is an interpolation: every averaged weight lies within the range the live weights took,
    # so it cannot be farther from the last iterate than the last iterate is from the first weights.
    gap = (averaged["model_state"][weight] - last["model_state"][weight]).abs().max()
    assert 0 < gap < 1.0
    ctrl = AdaptiveController.from_checkpoint(ckpt, seed=0)
    assert torch.equal(ctrl.model.layers[0].weight.detach(), averaged["model_state"][weight])


def test_resume_continues_the_average(tmp_path: Path) -> None:
    """A run resumed after round 1 continues the average from average.pt (its update count goes on from
    the stopped run's) and the live weights from model_last.pt (the raw iterate, not the average)."""
    settings, run_dir = RunSettings("cartpole", "weak_motor_train", seed=0), tmp_path / "run"
    meta_train(_preset("rebal", 0.9, iterations=1), settings, run_dir, progress=False)
    # Mark the stopped run's live weights, so we can tell where training went on from.
    stopped = load_checkpoint(run_dir / "model_last.pt")
    weight = "layers.0.weight"
    stopped["model_state"][weight] += 5.0
    torch.save(stopped, run_dir / "model_last.pt")
    meta_train(_preset("rebal", 0.9, iterations=2), settings, run_dir, resume=True, progress=False)
    meta = _preset("rebal", 0.9).meta
    count = torch.load(run_dir / "average.pt", weights_only=True)["n_averaged"]
    assert int(count) == meta.first_updates + 2 * meta.updates_per_iteration
    assert json.loads((run_dir / "progress.json").read_text())["env_steps"] == RANDOM_STEPS + 2 * ROUND_STEPS
    averaged, last = load_checkpoint(run_dir / "model.pt"), load_checkpoint(run_dir / "model_last.pt")
    assert (averaged["meta"]["iteration"], last["meta"]["iteration"]) == (2, 2)
    # Round 2's 10 small Adam steps (lr 1e-3) went on from the marked live weights ...
    assert (last["model_state"][weight] - stopped["model_state"][weight]).abs().max() < 0.05
    # ... and the average went on from average.pt: after 10 more updates 0.9^10 = 0.35 of the old average
    # is left, so it moved 1 - 0.9^10 = 0.65 of the +5 mark (a restarted average would copy all of it).
    shift = (averaged["model_state"][weight] - stopped["model_state"][weight] + 5.0).mean()
    assert 0.55 * 5.0 < shift < 0.75 * 5.0
