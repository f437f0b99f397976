"""adaptive_mbrl.trainer: one train() picks fitting, meta-training or a baseline; presets of every kind load."""
from __future__ import annotations

from pathlib import Path

import pytest

import adaptive_mbrl.trainer as trainer
from adaptive_mbrl.baselines import PEARLPreset, RL2Preset
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.storage.runs import RunSettings


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict]]:
    """Replace the three trainers by recorders of (trainer, preset name, keyword arguments)."""
    seen: list[tuple[str, str, dict]] = []

    def recorder(name: str):
        def run(preset, settings, run_dir, **kwargs):
            seen.append((name, preset.name, kwargs))
            return Path(run_dir) / "model.pt"
        return run

    for name in ("train_model", "meta_train", "train_baseline"):
        monkeypatch.setattr(trainer, name, recorder(name))
    return seen


@pytest.mark.parametrize(("preset", "expected"), [
    ("mb", "train_model"), ("mb_de", "train_model"), ("grbal", "meta_train"), ("rebal", "meta_train"),
    ("pearl", "train_baseline"), ("rl2", "train_baseline")])
def test_train_dispatches_on_the_preset(preset: str, expected: str, calls: list, tmp_path: Path) -> None:
    checkpoint = trainer.train(trainer.load_training_preset(preset), RunSettings("cartpole"), tmp_path,
                               resume=True, progress=False)
    assert checkpoint == tmp_path / "model.pt"
    assert calls == [(expected, calls[0][1], {"resume": True, "progress": False, "overwrite": False})]


def test_load_training_preset_sets_the_round_count_for_every_kind() -> None:
    mb = trainer.load_training_preset("mb", 3, ["model.hidden_sizes=[8]"])
    assert isinstance(mb, ControllerPreset) and mb.training.iterations == 3 and mb.model.hidden_sizes == [8]
    assert isinstance(trainer.load_training_preset("pearl", 4), PEARLPreset)
    rl2 = trainer.load_training_preset("rl2", 4)
    assert isinstance(rl2, RL2Preset) and rl2.training.iterations == 4


def test_baselines_refuse_model_based_settings() -> None:
    with pytest.raises(ValueError, match="training.random_steps=5.*not to the baseline 'pearl'"):
        trainer.load_training_preset("pearl", overrides=["training.random_steps=5"])
