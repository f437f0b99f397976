"""``make()`` (adaptive_mbrl/envs/factory.py): argument errors and seed semantics."""
from __future__ import annotations

import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.envs.factory import make_simulator
from adaptive_mbrl.envs.mujoco_sim import MujocoSimulator
from adaptive_mbrl.envs.robot_env import RobotEnv


def test_make_returns_a_mujoco_env_by_default() -> None:
    env = am.make("cartpole")
    assert isinstance(env, RobotEnv) and isinstance(env.sim, MujocoSimulator)
    assert env.scenario.name == "nominal" and env.robot.name == "cartpole"


def test_unknown_robot_lists_the_allowed() -> None:
    with pytest.raises(ValueError) as info:
        am.make("cheetah")
    message = str(info.value)
    assert "'cheetah'" in message and all(r in message for r in ("half_cheetah", "ant", "cartpole"))


def test_unknown_scenario_lists_the_allowed() -> None:
    with pytest.raises(ValueError) as info:
        am.make("half_cheetah", scenario="crippled_joint")
    message = str(info.value)
    assert "'crippled_joint'" in message and "half_cheetah" in message
    for name in am.list_scenarios("half_cheetah"):
        assert name in message


def test_unknown_backend_lists_the_allowed() -> None:
    with pytest.raises(ValueError) as info:
        am.make("half_cheetah", backend="bullet")
    assert "'bullet'" in str(info.value) and "mujoco" in str(info.value) and "pybullet" in str(info.value)
    with pytest.raises(ValueError, match="allowed: mujoco, pybullet"):
        make_simulator(am.load_robot("ant"), "isaac")


def test_backend_the_robot_lacks_names_the_available_ones() -> None:
    with pytest.raises(ValueError) as info:
        am.make("cartpole", backend="pybullet")
    assert "'cartpole'" in str(info.value) and "available backends: mujoco" in str(info.value)


def test_first_reset_without_seed_uses_the_make_seed() -> None:
    seeded = am.make("half_cheetah", scenario="payload_train", seed=21)
    explicit = am.make("half_cheetah", scenario="payload_train")
    obs_a, info_a = seeded.reset()
    obs_b, info_b = explicit.reset(seed=21)
    assert np.array_equal(obs_a, obs_b) and info_a["task"] == info_b["task"]
    # the next seedless reset continues the stream: a new start and a new task, the same in both envs
    obs_a2, info_a2 = seeded.reset()
    obs_b2, info_b2 = explicit.reset()
    assert not np.array_equal(obs_a2, obs_a) and info_a2["task_id"] != info_a["task_id"]
    assert np.array_equal(obs_a2, obs_b2) and info_a2["task"] == info_b2["task"]


def test_explicit_seed_at_the_first_reset_wins_and_is_not_overridden_later() -> None:
    """make(seed=s) then reset(seed=t): t is used, and s is never applied to a later reset."""
    env = am.make("half_cheetah", scenario="payload_train", seed=21)
    ref = am.make("half_cheetah", scenario="payload_train")
    assert np.array_equal(env.reset(seed=5)[0], ref.reset(seed=5)[0])
    second, ref_second = env.reset(), ref.reset()
    assert np.array_equal(second[0], ref_second[0]) and second[1]["task"] == ref_second[1]["task"]
    assert not np.array_equal(second[0], am.make("half_cheetah", scenario="payload_train", seed=21).reset()[0])


def test_no_seed_gives_varied_starts() -> None:
    starts = [am.make("cartpole").reset()[0] for _ in range(3)]
    assert not np.array_equal(starts[0], starts[1]) or not np.array_equal(starts[1], starts[2])


def test_episode_steps_override() -> None:
    assert am.make("half_cheetah", episode_steps=12).episode_steps == 12
    assert am.make("half_cheetah").episode_steps == 1000
