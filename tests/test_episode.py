"""One evaluation episode: any checkpoint's controller, mid-episode changes recorded, seeded jobs."""
import numpy as np
import pytest

from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.evaluation import EpisodeJob, load_controller, run_episode, run_job


def test_load_controller_runs_a_model_checkpoint_with_another_preset(tiny_cartpole_checkpoint) -> None:
    plain = load_controller(tiny_cartpole_checkpoint)
    tuned = load_controller(tiny_cartpole_checkpoint, "mb_de")
    assert isinstance(plain, AdaptiveController) and plain.adapter.config.kind == "none"
    assert tuned.adapter.config.kind == "finetune"
    assert [p.shape for p in tuned.model.parameters()] == [p.shape for p in plain.model.parameters()]


def test_episode_records_rewards_and_the_mid_episode_change(tiny_cartpole_checkpoint) -> None:
    record = run_episode(load_controller(tiny_cartpole_checkpoint, seed=0), "cartpole", "motor_fault_midepisode",
                         seed=1, episode_steps=110)
    assert len(record.rewards) == 110 and np.isclose(record.total, sum(record.rewards))
    assert record.change_steps == [100]  # the scenario's motor fault
    assert record.wall_s > 0


def test_jobs_are_reproducible_and_depend_on_their_seeds(tiny_cartpole_checkpoint) -> None:
    def job(seed: int, env_seed: int) -> EpisodeJob:
        return EpisodeJob("cartpole", "mujoco", "weak_motor_test", "MB", str(tiny_cartpole_checkpoint), None,
                          seed, 0, env_seed, 30)

    first, again = run_job(job(0, 10_000)), run_job(job(0, 10_000))
    assert first["rewards"] == again["rewards"] and first["steps"] == 30
    assert run_job(job(0, 10_001))["rewards"] != first["rewards"]
    assert first["key"] == "cartpole/mujoco/weak_motor_test/MB/s0/e0"


def test_a_preset_for_a_policy_checkpoint_is_refused(tmp_path) -> None:
    from adaptive_mbrl.baselines.presets import load_baseline_preset
    from adaptive_mbrl.config import to_dict
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "p.pt", robot="cartpole", obs_dim=5, action_dim=1,
                           preset=to_dict(load_baseline_preset("pearl")), model_state={})
    with pytest.raises(ValueError, match="model-based checkpoints only"):
        load_controller(path, "mb_de")
