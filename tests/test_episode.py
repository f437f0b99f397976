"""One evaluation episode: any checkpoint's controller, mid-episode changes recorded, seeded jobs."""
import numpy as np
import pytest
import torch

from adaptive_mbrl.control import AdaptiveController
from adaptive_mbrl.evaluation import EpisodeJob, EpisodeRecord, load_controller, run_episode, run_job


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


# --- warm-up: earlier episodes of the same task before the scored one (PEARL's protocol, RL²'s trials) ------

@pytest.fixture
def reset_tasks(monkeypatch) -> list[tuple]:
    """``(task, initial observation)`` of every RobotEnv.reset, in order."""
    from adaptive_mbrl.envs.robot_env import RobotEnv

    seen, reset = [], RobotEnv.reset

    def recording(self, **kwargs):
        obs, info = reset(self, **kwargs)
        seen.append((info["task"], obs.copy()))
        return obs, info

    monkeypatch.setattr(RobotEnv, "reset", recording)
    return seen


def test_warmup_gives_pearls_scored_episode_the_context_of_the_same_task(tiny_pearl_checkpoint, reset_tasks) -> None:
    """Between-episode PEARL: without warm-up the scored episode acts with the prior's z; with one warm-up
    episode its z is inferred from that episode's transitions, on the very task the scored episode runs."""
    def scored_z(warmup: int) -> tuple[torch.Tensor, int, EpisodeRecord]:
        ctrl = load_controller(tiny_pearl_checkpoint, seed=0, overrides=["adapt_within_episode=false"])
        start = {}
        record = run_episode(ctrl, "cartpole", "motor_fault_midepisode", seed=5, episode_steps=110,
                             warmup_episodes=warmup,
                             on_step=lambda env, k: start.update(z=ctrl.z.clone(), n=len(ctrl.task_context))
                             if k == 0 else None)
        return start["z"], start["n"], record

    prior_z, prior_n, plain = scored_z(0)
    del reset_tasks[:]
    z, n, record = scored_z(1)
    assert prior_n == 0 and plain.warmup_steps == 0
    assert n == 110 and record.warmup_steps == 110 and record.warmup_wall_s > 0
    assert not torch.allclose(z, prior_z)  # the posterior given the warm-up episode, not the prior
    assert record.change_steps == [100] and len(record.rewards) == 110
    # the task-drawing reset, the warm-up episode, the scored episode: one task (with its motor fault event),
    # the warm-up from another initial state than the scored episode's
    (drawn, _), (warm, warm_obs), (scored, scored_obs) = reset_tasks
    assert drawn == warm == scored and scored.events
    assert not np.allclose(warm_obs, scored_obs)


class _Recorder:
    """A context-free controller (constant action) that logs its resets' ``new_task``."""

    def __init__(self) -> None:
        self.resets: list[bool] = []

    def reset(self, new_task: bool = True) -> None:
        self.resets.append(new_task)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.full(1, 0.3, np.float32)

    def observe(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        pass


def test_the_scored_episode_is_played_as_without_warmup(reset_tasks) -> None:
    """Warm-up changes only the controller's context: the scored episode has the same task and initial state;
    the controller starts a new task once, then continues it."""
    plain, warm = _Recorder(), _Recorder()
    without = run_episode(plain, "cartpole", "weak_motor_test", seed=7, episode_steps=15)
    with_warmup = run_episode(warm, "cartpole", "weak_motor_test", seed=7, episode_steps=15, warmup_episodes=2)
    assert with_warmup.rewards == without.rewards and with_warmup.warmup_steps == 30
    assert plain.resets == [True] and warm.resets == [True, False, False]
    tasks = [task for task, _ in reset_tasks]
    assert all(task == tasks[0] for task in tasks)
    starts = [obs for _, obs in reset_tasks]  # plain; warm-up draw, warm-up 0, warm-up 1; scored
    assert np.array_equal(starts[0], starts[-1]) and np.array_equal(starts[0], starts[1])
    assert not np.allclose(starts[2], starts[0]) and not np.allclose(starts[3], starts[2])


def test_warmup_is_refused_for_a_controller_without_task_context(tiny_cartpole_checkpoint) -> None:
    controller = load_controller(tiny_cartpole_checkpoint, seed=0)
    with pytest.raises(TypeError, match="AdaptiveController.reset\\(\\) takes no new_task"):
        run_episode(controller, "cartpole", "weak_motor_test", seed=1, episode_steps=5, warmup_episodes=1)
    with pytest.raises(ValueError, match="warmup_episodes: -1 is out of range; allowed: an integer >= 0"):
        run_episode(_Recorder(), "cartpole", "weak_motor_test", seed=1, episode_steps=5, warmup_episodes=-1)


def test_a_warmup_job_has_its_own_key_and_records_its_warmup_steps(tiny_pearl_checkpoint) -> None:
    job = EpisodeJob("cartpole", "mujoco", "weak_motor_test", "PEARL", str(tiny_pearl_checkpoint), None, 0, 0,
                     10_000, 12, ("adapt_within_episode=false",), warmup_episodes=2)
    result = run_job(job)
    assert result["key"] == "cartpole/mujoco/weak_motor_test/PEARL/s0/e0|set=adapt_within_episode=false|warmup=2"
    assert (result["steps"], result["warmup_steps"], result["warmup_episodes"]) == (12, 24, 2)


def test_warmup_continues_an_rl2_trial_into_the_scored_episode(tmp_path) -> None:
    """RL²: the scored episode starts with the hidden state the warm-up episode left (the trial goes on),
    not the zero state of a new trial."""
    from adaptive_mbrl.baselines.presets import RL2Preset
    from adaptive_mbrl.baselines.rl2 import RL2Policy
    from adaptive_mbrl.config import to_dict
    from adaptive_mbrl.storage.checkpoint import save_checkpoint

    preset = RL2Preset(name="tiny", hidden_size=8, embed_size=4)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "rl2.pt", robot="cartpole", obs_dim=5, action_dim=1, preset=to_dict(preset),
                           model_state=RL2Policy(5, 1, preset).state_dict())
    starts = []
    for warmup in (0, 1):
        ctrl = load_controller(path, seed=0)
        run_episode(ctrl, "cartpole", "weak_motor_test", seed=2, episode_steps=8, warmup_episodes=warmup,
                    on_step=lambda env, k: starts.append((ctrl.h.clone(), float(ctrl.prev_done))) if k == 0 else None)
    (h_plain, done_plain), (h_warm, done_warm) = starts
    assert not h_plain.any() and h_warm.abs().sum() > 0
    assert (done_plain, done_warm) == (0.0, 1.0)  # the scored episode's first input flags the episode boundary
