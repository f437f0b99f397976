"""Checkpoints: exact round trip, weights_only loading, clear errors, atomic writes, the YAML twin."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from adaptive_mbrl.config import to_dict
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.presets import load_preset
from adaptive_mbrl.storage.checkpoint import FORMAT, load_checkpoint, save_checkpoint


def _model(seed: int = 0) -> DynamicsModel:
    model = DynamicsModel(5, 1, ModelConfig(hidden_sizes=[8]), seed=seed)
    with torch.no_grad():  # non-trivial normaliser statistics, so buffers are checked too
        model.obs_norm.mean.copy_(torch.arange(5.0))
        model.delta_norm.std.copy_(torch.linspace(0.5, 2.0, 5))
    return model


def _save(path: Path, model: DynamicsModel, iteration: int = 3) -> Path:
    preset = to_dict(load_preset("mb"))
    return save_checkpoint(path, robot="cartpole", obs_dim=5, action_dim=1, preset=preset,
                           model_state=model.state_dict(), meta={"iteration": iteration, "scenario": "nominal"})


def test_round_trip_is_exact(tmp_path: Path) -> None:
    model = _model()
    path = _save(tmp_path / "run" / "model.pt", model)
    assert path == tmp_path / "run" / "model.pt" and path.is_file()
    payload = load_checkpoint(path)
    assert payload["format"] == FORMAT
    assert (payload["robot"], payload["obs_dim"], payload["action_dim"]) == ("cartpole", 5, 1)
    assert payload["preset"] == to_dict(load_preset("mb"))
    assert payload["meta"] == {"iteration": 3, "scenario": "nominal"}
    state = model.state_dict()
    assert set(payload["model_state"]) == set(state)
    for key, value in state.items():
        assert torch.equal(payload["model_state"][key], value), key
    # The loaded weights reproduce the model's predictions exactly.
    other = DynamicsModel(5, 1, ModelConfig(hidden_sizes=[8]), seed=1)
    other.load_state_dict(payload["model_state"])
    obs, act = torch.randn(4, 5), torch.rand(4, 1)
    assert torch.equal(other.predict(obs, act), model.predict(obs, act))


def test_plain_torch_load_with_weights_only(tmp_path: Path) -> None:
    path = _save(tmp_path / "model.pt", _model())
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT
    assert all(isinstance(v, torch.Tensor) for v in payload["model_state"].values())


def test_yaml_twin_describes_the_checkpoint(tmp_path: Path) -> None:
    path = _save(tmp_path / "model.pt", _model(), iteration=7)
    twin = tmp_path / "model.yaml"
    assert twin.is_file()
    summary = yaml.safe_load(twin.read_text())
    assert summary["format"] == FORMAT and summary["robot"] == "cartpole"
    assert summary["preset"]["name"] == "mb"
    assert summary["meta"]["iteration"] == 7
    assert "model_state" not in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.yaml"]


@pytest.mark.parametrize("content", ["text", "npz", "state_dict", "empty"])
def test_wrong_file_gives_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "not_a_checkpoint.pt"
    if content == "text":
        path.write_text("hello, I am not a checkpoint\n")
    elif content == "npz":
        with open(path, "wb") as handle:
            np.savez(handle, a=np.zeros(3))
    elif content == "state_dict":
        torch.save(_model().state_dict(), path)
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="not an adaptive_mbrl checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failing_write_keeps_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path / "model.pt", _model(0), iteration=1)
    before_pt, before_yaml = path.read_bytes(), (tmp_path / "model.yaml").read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:  # half-written file, then the crash
            handle.truncate(100)
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="killed mid-write"):
        _save(path, _model(1), iteration=2)
    monkeypatch.undo()
    assert path.read_bytes() == before_pt
    assert (tmp_path / "model.yaml").read_bytes() == before_yaml
    assert load_checkpoint(path)["meta"]["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.yaml"], "temporary file left"


def test_a_model_trained_on_other_actions_is_refused(tmp_path: Path) -> None:
    # The A1 takes PD joint targets now; a checkpoint from its torque-controlled days has the same sizes but
    # its actions meant torques. Files written before the field existed count as torque.
    from adaptive_mbrl.control import AdaptiveController
    from adaptive_mbrl.storage.checkpoint import check_actuation
    preset = to_dict(load_preset("mb"))
    model = DynamicsModel(35, 12, ModelConfig(hidden_sizes=[8]))
    old = save_checkpoint(tmp_path / "torque.pt", robot="a1", obs_dim=35, action_dim=12, preset=preset,
                          model_state=model.state_dict())
    payload = torch.load(old, weights_only=True)
    del payload["actuation"]
    torch.save(payload, old)
    with pytest.raises(ValueError, match="trained with actuation 'torque'.*actuation.mode 'pd_target'"):
        AdaptiveController.from_checkpoint(old, backend="pybullet")
    new = save_checkpoint(tmp_path / "pd.pt", robot="a1", obs_dim=35, action_dim=12, preset=preset,
                          model_state=model.state_dict(), actuation="pd_target")
    check_actuation(load_checkpoint(new), new, "pd_target")  # matches the robot file: no error
    with pytest.raises(ValueError, match="trained with actuation 'pd_target'.*actuation.mode 'torque'"):
        check_actuation(load_checkpoint(new), new, "torque")
    assert yaml.safe_load(new.with_suffix(".yaml").read_text())["actuation"] == "pd_target"
