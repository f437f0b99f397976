"""TrajectoryScorer: hand-computed returns, termination mask, discount, batching."""
import pytest
import torch

from adaptive_mbrl.planning import TrajectoryScorer


def linear_step(obs, act):
    """x' = x + a (2-D state, 2-D action)."""
    return obs + act


def reward(obs, act, next_obs):
    """r = x'_0 - 0.1 * |a|^2."""
    return next_obs[..., 0] - 0.1 * (act * act).sum(-1)


def test_returns_match_hand_computation():
    obs = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # B = 2
    actions = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]],   # from x0 = 0: x' = 1, 2, 2
                            [[-1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # from x0 = 0: x' = -1, -1, -1
    batch_actions = actions[None].expand(2, 2, 3, 2)  # [B, N, H, a]
    returns = TrajectoryScorer(linear_step, reward)(obs, batch_actions)
    expected = torch.tensor([[(1 - 0.1) + (2 - 0.1) + (2 - 0.1), -1.1 - 1 - 1],
                             [(2 - 0.1) + (3 - 0.1) + (3 - 0.1), -0.1 + 0 + 0]])
    torch.testing.assert_close(returns, expected)
    discounted = TrajectoryScorer(linear_step, reward, discount=0.5)(obs, batch_actions)
    torch.testing.assert_close(discounted[0, 0], torch.tensor(0.9 + 0.5 * 1.9 + 0.25 * 1.9))


def test_reward_stops_after_termination():
    obs = torch.zeros(1, 2)
    actions = torch.tensor([[[[1.0, 0.0]] * 4, [[0.5, 0.0]] * 4]])  # [1, 2, 4, 2]
    terminated = lambda next_obs: next_obs[..., 0] >= 2.0  # first sample ends at step 2 (x' = 2)
    returns = TrajectoryScorer(linear_step, reward, terminated)(obs, actions)
    # Sample 0: rewards 0.9, 1.9 (terminal step counts), then nothing. Sample 1: x' = .5, 1, 1.5, 2.
    torch.testing.assert_close(returns, torch.tensor([[0.9 + 1.9, (0.5 + 1.0 + 1.5 + 2.0) - 4 * 0.025]]))


def test_one_batched_call_per_horizon_step_under_inference_mode():
    calls = []

    def step(obs, act):
        calls.append((tuple(obs.shape), tuple(act.shape)))
        return obs + act

    scorer = TrajectoryScorer(step, reward)
    with torch.inference_mode():
        returns = scorer(torch.zeros(3, 2), torch.rand(3, 50, 7, 2))
    assert returns.shape == (3, 50)
    assert calls == [((3, 50, 2), (3, 50, 2))] * 7


def test_float64_observations_follow_action_dtype_and_bad_shapes_fail():
    returns = TrajectoryScorer(linear_step, reward)(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 3, 2, 2))
    assert returns.dtype == torch.float32
    with pytest.raises(ValueError, match="obs must be"):
        TrajectoryScorer(linear_step, reward)(torch.zeros(2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="discount"):
        TrajectoryScorer(linear_step, reward, discount=0.0)


def test_with_dynamics_model_and_env_objective():
    from adaptive_mbrl import load_robot
    from adaptive_mbrl.envs.objectives import make_objective
    from adaptive_mbrl.models import DynamicsModel, ModelConfig

    model = DynamicsModel(5, 1, ModelConfig(hidden_sizes=[8], ensemble_size=2), seed=0)
    objective = make_objective(load_robot("cartpole").objective, nq=2, nv=2)
    scorer = TrajectoryScorer(model.predict, objective.reward, objective.terminated)
    with torch.inference_mode():
        returns = scorer(torch.randn(2, 5), torch.rand(2, 16, 5, 1) * 2 - 1)
    assert returns.shape == (2, 16) and torch.isfinite(returns).all()
