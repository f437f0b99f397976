"""RL² trial collection from a batch of envs: each trial is what that trial gives when collected alone (no
hidden state, task or episode mixed up between envs), envs that finish start the next trial with a zero
state, recorded values / log-probabilities are those of a pass over each whole trial from a zero state,
and a trial replays on a fresh env with its recorded actions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import adaptive_mbrl as am
from adaptive_mbrl.baselines.presets import RL2Preset
from adaptive_mbrl.baselines.rl2 import RL2Policy
from adaptive_mbrl.baselines.rl2_trials import collect_trials, max_trial_steps

SEEDS = [11, 12, 13, 14, 15]


def _policy(log_std: float = 0.0) -> RL2Policy:
    torch.manual_seed(0)
    policy = RL2Policy(5, 1, RL2Preset(name="tiny", hidden_size=16, embed_size=8, init_log_std=log_std))
    with torch.no_grad():  # actions that visibly depend on the input (and so on the hidden state)
        policy.mean_head.weight.normal_()
    return policy


def _envs() -> list:
    """Three envs with different episode lengths, so that they finish trials at different times and the
    trial -> env assignment is not round-robin."""
    return [am.make("cartpole", "weak_motor_train", episode_steps=n) for n in (4, 7, 5)]


def test_batched_trials_equal_trials_collected_one_at_a_time() -> None:
    policy = _policy(log_std=-30.0)  # noise far below float resolution: actions are the policy's means
    envs = _envs()
    batch = collect_trials(policy, envs, SEEDS, episodes=2)
    # 5 trials on 3 envs: the short-episode env 0 runs trials 0 and 3, env 2 runs 2 and 4
    assert batch["trial_env"] == [0, 1, 2, 0, 2]
    assert batch["mask"].sum(0).tolist() == [8.0, 14.0, 10.0, 8.0, 10.0]
    for k, seed in enumerate(SEEDS):
        alone = collect_trials(policy, [envs[batch["trial_env"][k]]], [seed], episodes=2)
        n = int(alone["mask"].sum())
        for key in ("x", "action", "value", "reward", "log_prob"):
            assert torch.allclose(batch[key][:n, k], alone[key][:n, 0], atol=1e-5), (k, key)
        assert batch["done"][:, k].nonzero().flatten().tolist() == [n - 1]
        assert batch["episode_returns"][k] == pytest.approx(alone["episode_returns"][0], abs=1e-5)
        assert batch["tasks"][k] == alone["tasks"][0]
    # the tasks differ between trials, so a mix-up would show
    assert len({repr(task) for task in batch["tasks"]}) == len(SEEDS)


def test_recorded_values_are_a_zero_state_pass_over_each_trial() -> None:
    """Sampled actions: value and log-probability at every step equal one forward of the trial's inputs
    from a zero hidden state, also for trials that an env started after finishing another one (its hidden
    state was reset there)."""
    policy = _policy(log_std=0.0)
    data = collect_trials(policy, _envs(), SEEDS, episodes=2, generator=torch.Generator().manual_seed(0))
    mean, values, _ = policy(data["x"], policy.initial_state(len(SEEDS)))
    keep = data["mask"] > 0
    assert torch.allclose(values[keep], data["value"][keep], atol=1e-5)
    assert torch.allclose(policy.log_prob(mean, data["action"])[keep], data["log_prob"][keep], atol=1e-4)
    # the same trial continued from the hidden state its env had at the end of its previous trial differs
    env0 = [k for k, e in enumerate(data["trial_env"]) if e == 0]
    _, _, h_end = policy(data["x"][:int(data["mask"][:, env0[0]].sum()), env0[0]:env0[0] + 1],
                         policy.initial_state(1))
    _, carried, _ = policy(data["x"][:, env0[1]:env0[1] + 1], h_end)
    assert not torch.allclose(carried[:, 0][keep[:, env0[1]]], data["value"][:, env0[1]][keep[:, env0[1]]], atol=1e-3)


def test_a_trial_replays_on_a_fresh_env_with_its_recorded_actions() -> None:
    policy = _policy(log_std=0.0)
    envs = _envs()
    data = collect_trials(policy, envs, SEEDS, episodes=2, generator=torch.Generator().manual_seed(1))
    k = 3  # the second trial of env 0
    steps = envs[data["trial_env"][k]].unwrapped.episode_steps
    env = am.make("cartpole", "weak_motor_train", episode_steps=steps)
    obs, _ = env.reset(seed=SEEDS[k])
    task = env.task
    for t in range(2 * steps):
        if t == steps:  # the second episode replays the first one's task
            obs, _ = env.reset(options={"task": task})
            assert data["x"][t, k, -1] == 1.0
        assert np.allclose(data["x"][t, k, :5].numpy(), obs, atol=1e-6), t
        obs, reward, *_ = env.step(np.clip(data["action"][t, k].numpy(), -1.0, 1.0))
        assert data["reward"][t, k].item() == pytest.approx(reward, abs=1e-5)
    assert data["tasks"][k] == task


def test_trial_lengths_and_bad_arguments() -> None:
    envs = _envs()
    assert max_trial_steps(envs, 3) == 21
    with pytest.raises(ValueError, match="at least one env"):
        collect_trials(_policy(), envs, [], episodes=1)
    with pytest.raises(ValueError, match="episodes"):
        collect_trials(_policy(), envs, SEEDS, episodes=0)
