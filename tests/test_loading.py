"""am.load_controller: any checkpoint (a path or shipped:<robot>/<name>) -> a Controller."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.control import AdaptiveController, Controller


def test_top_level_names_are_the_controller_api() -> None:
    from adaptive_mbrl.loading import load_controller
    assert am.load_controller is load_controller and am.AdaptiveController is AdaptiveController
    assert am.Controller is Controller and {"load_controller", "AdaptiveController"} <= set(dir(am))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        am.nope  # noqa: B018


def test_import_adaptive_mbrl_does_not_import_torch() -> None:
    import subprocess
    import sys
    code = "import sys, adaptive_mbrl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_shipped_checkpoints_load_through_every_entry_point() -> None:
    """``shipped:`` used to work only in the CLI and suites ("does not exist" in the Python API)."""
    plain = am.load_controller("shipped:half_cheetah/mb", seed=0)
    assert isinstance(plain, AdaptiveController) and isinstance(plain, Controller)
    assert plain.preset.adapter.kind == "none"
    tuned = am.load_controller("shipped:half_cheetah/mb", "mb_de", seed=0, overrides=["planner.samples=40"])
    assert tuned.preset.name == "mb_de" and tuned.preset.planner.samples == 40
    rebal = AdaptiveController.from_preset("rebal", robot="half_cheetah", checkpoint="shipped:half_cheetah/rebal")
    assert rebal.preset.adapter.kind == "rebal"
    assert AdaptiveController.from_checkpoint("shipped:half_cheetah/grbal").preset.adapter.kind == "grbal"
    # the shipped PE-ReBAL runs with the context gate (set after its training, which had it off)
    pets_rebal = AdaptiveController.from_checkpoint("shipped:half_cheetah/pets_rebal")
    assert (pets_rebal.preset.adapter.kind, pets_rebal.preset.adapter.context_gate) == ("rebal", True)
    action = tuned.act(np.zeros(17))
    assert action.shape == (6,) and np.all(np.abs(action) <= 1)


def test_the_shipped_motor_fault_model_runs_with_gains_and_slow_fine_tuning() -> None:
    """``pets_grbal`` (the PE-GrBAL-trained ensemble, 200k) runs as trained (its own inner step) or, as the
    results recommend for motor faults, with ``pets_gains_de``'s adapter at a third of its fine-tuning rate."""
    own = AdaptiveController.from_checkpoint("shipped:half_cheetah/pets_grbal")
    assert (own.preset.adapter.kind, own.preset.adapter.inner_loss) == ("grbal", "mse")
    motor = am.load_controller("shipped:half_cheetah/pets_grbal", "pets_gains_de", seed=0,
                               overrides=["adapter.finetune_learning_rate=3e-5"])
    adapter = motor.preset.adapter
    assert (adapter.kind, adapter.finetune_steps, adapter.finetune_learning_rate) == ("actuator_gains", 1,
                                                                                      pytest.approx(3e-5))
    # the same network either way: the meta-trained ensemble, planned with the posture term
    assert motor.preset.model == own.preset.model and motor.preset.planner.upright_cost == 3.0
    env = am.make("half_cheetah", scenario="crippled_joint_test", seed=0)
    obs, _ = env.reset(seed=0)
    motor.reset()
    for _ in range(3):
        action = motor.act(obs)
        next_obs, *_ = env.step(action)
        motor.observe(obs, action, next_obs)
        obs = next_obs
    assert action.shape == (6,) and np.all(np.abs(action) <= 1)


def test_robot_mismatch_and_unknown_shipped_names_are_refused(tiny_cartpole_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="trained on robot 'cartpole', not 'ant'"):
        am.load_controller(tiny_cartpole_checkpoint, robot="ant")
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint 'shipped:cartpole/mb'; allowed: "):
        am.load_controller("shipped:cartpole/mb")


def test_rebal_on_a_checkpoint_without_context_says_why_it_cannot_run(tiny_cartpole_checkpoint: Path) -> None:
    """It used to say "set model.context_dim in the preset", which cannot help: the network comes from the
    checkpoint."""
    with pytest.raises(ValueError) as info:
        am.load_controller(tiny_cartpole_checkpoint, "rebal")
    message = str(info.value)
    assert "trained with adapter 'none' (preset 'tiny_mb')" in message
    assert "no context input (model.context_dim = 0)" in message and "cannot run the 'rebal' adapter" in message
    assert "set model.context_dim" not in message


def test_a_context_network_needs_the_rebal_adapter() -> None:
    with pytest.raises(ValueError, match="takes a context input .* cannot run adapter 'finetune'; allowed: rebal"):
        am.load_controller("shipped:half_cheetah/rebal", "mb_de")


def test_threads_are_set_when_the_controller_is_built(tiny_cartpole_checkpoint: Path) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        am.load_controller(tiny_cartpole_checkpoint)  # the default
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        am.load_controller(tiny_cartpole_checkpoint, threads=None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_baselines_take_no_preset_or_overrides(tmp_path: Path) -> None:
    from adaptive_mbrl.baselines.presets import load_baseline_preset
    from adaptive_mbrl.config import to_dict
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "p.pt", robot="cartpole", obs_dim=5, action_dim=1,
                           preset=to_dict(load_baseline_preset("pearl")), model_state={})
    with pytest.raises(ValueError, match="pearl policy; overrides .* model-based checkpoints only"):
        am.load_controller(path, overrides=["planner.samples=3"])


def test_a_probabilistic_ensemble_round_trips_with_its_elites_and_bounds(tmp_path: Path) -> None:
    """save_checkpoint -> load_controller gives the same elites, log-variance bounds and predictions."""
    from adaptive_mbrl.config import from_dict, to_dict
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import ControllerPreset
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    preset = from_dict(ControllerPreset, {
        "name": "tiny_pets", "model": {"hidden_sizes": [16], "ensemble_size": 4, "probabilistic": True, "elites": 2},
        "adapter": {"kind": "none", "window": 4},
        "planner": {"kind": "icem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4, "particles": 4}},
        source="test")
    model = DynamicsModel(5, 1, preset.model, seed=0)
    model.set_elites([1, 3])  # not the initial [0, 1]
    with torch.no_grad():
        model.max_logvar.add_(torch.linspace(-1.0, 0.0, 5))
        model.min_logvar.sub_(0.5)
    path = save_checkpoint(tmp_path / "pets.pt", robot="cartpole", obs_dim=5, action_dim=1, preset=to_dict(preset),
                           model_state=model.state_dict())
    loaded = am.load_controller(path, seed=0).model
    assert loaded.elite_members.tolist() == [1, 3]
    assert torch.equal(loaded.max_logvar, model.max_logvar) and torch.equal(loaded.min_logvar, model.min_logvar)
    obs, act = torch.randn(7, 5), torch.rand(7, 1) * 2 - 1
    with torch.no_grad():
        for got, want in zip(loaded.predict_distribution(obs, act), model.predict_distribution(obs, act)):
            assert torch.equal(got, want)
        assert torch.equal(loaded.predict(obs, act, member="all", sample=torch.Generator().manual_seed(1)),
                           model.predict(obs, act, member="all", sample=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", ["pearl", "rl2"])
def test_the_shipped_model_free_baselines_run_forward_on_held_out_damage(name: str) -> None:
    from adaptive_mbrl.evaluation import run_episode
    controller = am.load_controller(f"shipped:half_cheetah/{name}", seed=0)
    assert controller.preset.kind == name
    record = run_episode(controller, "half_cheetah", "crippled_joint_test", seed=10000, episode_steps=200)
    # trained: 200 steps of a cheetah that runs forward with joint 4, 5 or both disabled (a standing one
    # scores about 0; PEARL at 50k steps scored -90 over 1000; these two 1149 and 516 over 500 in the quickstart)
    assert record.total > 100.0, record.total
