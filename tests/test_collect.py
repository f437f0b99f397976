"""VectorCollector: step counts, episode bookkeeping (terminated / truncated), task labels after events."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from adaptive_mbrl.training.buffer import TransitionBuffer
from adaptive_mbrl.training.collect import CollectStats, VectorCollector, random_policy

EPISODE_STEPS, EVENT_STEP, TERMINATE_AT = 150, 100, 40


def _collect(steps: int, seed: int = 3, terminate_env0: bool = True
             ) -> tuple[VectorCollector, TransitionBuffer, CollectStats, list[int]]:
    """2 cartpoles under ``motor_fault_midepisode`` (150-step episodes, event at step 100), random actions.

    Env 0 is made to terminate at its 40th step of every episode (cartpole itself never terminates).
    """
    collector = VectorCollector("cartpole", "motor_fault_midepisode", n_envs=2, seed=seed,
                                episode_steps=EPISODE_STEPS)
    if terminate_env0:
        env0 = collector.envs[0]
        # ``terminated`` is evaluated before the env's step counter advances: _steps == 39 is the 40th step.
        env0.objective.terminated = lambda next_obs: env0._steps == TERMINATE_AT - 1
    buffer = TransitionBuffer(5, 1, capacity=16)
    resets: list[int] = []
    stats = collector.run(random_policy(1, np.random.default_rng(seed)), steps, buffer, progress=False,
                          on_reset=resets.append)
    return collector, buffer, stats, resets


@pytest.fixture(scope="module")
def collected() -> tuple[VectorCollector, TransitionBuffer, CollectStats, list[int]]:
    result = _collect(401)
    yield result
    result[0].close()


def _episodes(buffer: TransitionBuffer) -> dict[int, np.ndarray]:
    episode = buffer.array("episode")
    return {int(e): np.flatnonzero(episode == e) for e in np.unique(episode)}


def test_step_counts(collected) -> None:
    _, buffer, stats, _ = collected
    # Both envs step in lockstep: 201 rounds x 2 envs >= 401.
    assert stats.steps == len(buffer) == 402


def test_episodes_recorded_with_lengths_returns_and_done(collected) -> None:
    _, buffer, stats, resets = collected
    # Env 0: 5 terminated episodes of 40 steps (+1 step); env 1: one truncated episode of 150 (+51 steps).
    assert sorted(stats.lengths) == [TERMINATE_AT] * 5 + [EPISODE_STEPS]
    assert Counter(resets) == {0: 5, 1: 1}
    episodes = _episodes(buffer)
    assert len(episodes) == 8
    finished = {}
    for rows in episodes.values():
        steps = buffer.array("step")[rows]
        np.testing.assert_array_equal(steps, np.arange(len(rows)))
        # Within an episode each transition starts where the previous one ended.
        np.testing.assert_array_equal(buffer.array("obs")[rows[1:]], buffer.array("next_obs")[rows[:-1]])
        # Episodes start from a fresh reset: the pole hangs down.
        assert buffer.array("obs")[rows[0], 1] < -0.98
        done = buffer.array("done")[rows]
        if len(rows) == TERMINATE_AT:
            assert done.tolist() == [False] * (TERMINATE_AT - 1) + [True]
        else:
            assert not done.any()  # truncation (and unfinished episodes) are not terminal
        if len(rows) in (TERMINATE_AT, EPISODE_STEPS):
            finished.setdefault(len(rows), []).append(float(buffer.array("reward")[rows].sum(dtype=np.float64)))
    expected = sorted(finished[TERMINATE_AT] + finished[EPISODE_STEPS])
    np.testing.assert_allclose(sorted(stats.returns), expected, rtol=1e-5)
    assert all(r < 0 for r in stats.returns)  # random actions never swing the pole up for long


def test_buffer_rewards_match_the_planner_reward(collected) -> None:
    collector, buffer, _, _ = collected
    data = buffer.tensors()
    planner_reward = collector.reward_fn(data["obs"].double(), data["action"].double(), data["next_obs"].double())
    np.testing.assert_allclose(planner_reward.numpy(), buffer.array("reward"), rtol=1e-5, atol=1e-5)


def test_task_label_changes_after_the_midepisode_event(collected) -> None:
    _, buffer, _, _ = collected
    names = buffer.task_names
    checked = 0
    for rows in _episodes(buffer).values():
        labels = [names[t] for t in buffer.array("task")[rows]]
        if len(rows) <= EVENT_STEP:
            assert len(set(labels)) == 1 and labels[0].endswith("/0")
            continue
        before, after = set(labels[:EVENT_STEP]), set(labels[EVENT_STEP:])
        assert len(before) == 1 and len(after) == 1 and before != after, (before, after)
        assert labels[0].endswith("/0") and labels[EVENT_STEP].endswith("/1")
        assert labels[0].split("/")[0] == labels[EVENT_STEP].split("/")[0]
        checked += 1
    assert checked == 1  # env 1's full episode passed the event
    # Segments for meta-learning never straddle the fault.
    step = buffer.array("step")
    rows = buffer.segment_rows(20)
    assert len(rows) > 0
    for segment in rows:
        assert np.all(np.diff(step[segment]) == 1)
        assert not (step[segment[0]] < EVENT_STEP <= step[segment[-1]])


def test_same_seed_gives_the_same_data() -> None:
    first = _collect(60, seed=11, terminate_env0=False)
    second = _collect(60, seed=11, terminate_env0=False)
    for key in ("obs", "action", "next_obs", "reward", "step", "episode"):
        np.testing.assert_array_equal(first[1].array(key), second[1].array(key), err_msg=key)
    third = _collect(60, seed=12, terminate_env0=False)
    assert not np.array_equal(first[1].array("obs"), third[1].array("obs"))
    for result in (first, second, third):
        result[0].close()


def test_random_policy_is_batched_and_bounded() -> None:
    policy = random_policy(3, np.random.default_rng(0))
    actions = policy(np.zeros((4, 7)))
    assert actions.shape == (4, 3)
    assert np.all(np.abs(actions) <= 1.0)
    assert torch.as_tensor(actions).std() > 0.3


def test_planning_reward_adds_the_posture_term_where_the_robot_has_one() -> None:
    collector = VectorCollector("half_cheetah", n_envs=1, seed=0)
    obs = torch.tensor(collector.obs)
    flipped = obs.clone()
    flipped[:, 1] = np.pi  # the cheetah on its back
    act = torch.zeros(1, 6)
    assert collector.planning_reward(0.0) == collector.reward_fn  # the same bound method: no wrapper
    shaped = collector.planning_reward(2.0)
    torch.testing.assert_close(shaped(obs, act, flipped), collector.reward_fn(obs, act, flipped) - 4.0)
    collector.close()
    cartpole = VectorCollector("cartpole", n_envs=1, seed=0)
    assert cartpole.upright_fn is None  # no base orientation: the pets presets run there without the term
    assert cartpole.planning_reward(3.0) == cartpole.reward_fn
    cartpole.close()
