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


# --- trajectory sampling --------------------------------------------------------------------------------------
class OffsetEnsemble:
    """A fake ensemble of K members: member k moves the state by ``act + k`` (exact in float32). Records the
    member assignment of every call."""

    def __init__(self, k):
        self.num_members, self.seen = k, []

    def __call__(self, state, act, members, generator):
        full = members.expand(state.shape[:-1])
        self.seen.append(full.clone())
        return state + act[:, :, None, :] + full[..., None].to(state.dtype)


def record_states(store):
    def reward(obs, act, next_obs):
        store.append(next_obs.clone())
        return next_obs[..., 0]
    return reward


def offset_model(ensemble, elites=0):
    """A deterministic DynamicsModel whose member k predicts next_obs = obs + k (identity normalisers)."""
    from adaptive_mbrl.models import DynamicsModel, ModelConfig

    model = DynamicsModel(2, 2, ModelConfig(hidden_sizes=[4], ensemble_size=ensemble, elites=elites), seed=0)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        model.layers[-1].bias.copy_(torch.arange(ensemble, dtype=torch.float32)[:, None, None].expand(-1, 1, 2))
    return model.eval()


def test_ts_inf_keeps_each_particles_member_for_the_whole_horizon():
    step, states = OffsetEnsemble(3), []
    scorer = TrajectoryScorer(step, record_states(states), particles=6, propagation="ts_inf", seed=0)
    actions = torch.zeros(2, 4, 5, 2)
    returns = scorer(torch.zeros(2, 2), actions)
    increments = torch.diff(torch.stack([torch.zeros(2, 4, 6, 2)] + states), dim=0)[..., 0]  # [H, B, N, P]
    expected = (torch.arange(6) % 3).float()  # particle p -> member p % K, every step
    assert torch.equal(increments, expected.expand_as(increments))
    # Score = mean over particles: positions (h + 1) * k summed over 5 steps, k averaged over {0, 1, 2}.
    torch.testing.assert_close(returns, torch.full((2, 4), 15.0 * 1.0))


def test_ts_1_redraws_members_every_step_and_keeps_them_balanced():
    step, states = OffsetEnsemble(3), []
    scorer = TrajectoryScorer(step, record_states(states), particles=6, propagation="ts_1", seed=0)
    scorer(torch.zeros(2, 2), torch.zeros(2, 4, 8, 2))
    increments = torch.diff(torch.stack([torch.zeros(2, 4, 6, 2)] + states), dim=0)[..., 0].long()  # [H, B, N, P]
    counts = torch.stack([(increments == k).sum(-1) for k in range(3)])  # per step and candidate
    assert (counts == 2).all()  # each member propagates 2 of the 6 particles, every step
    changed = (increments[1:] != increments[:-1]).float().mean().item()
    assert 0.5 < changed < 0.85  # a fresh draw changes a particle's member with probability ~2/3


@pytest.mark.parametrize("particles", [1, 2])
def test_particles_fewer_than_members_are_spread_over_the_members(particles):
    step = OffsetEnsemble(5)
    TrajectoryScorer(step, reward, particles=particles, propagation="ts_inf", seed=0)(torch.zeros(1, 2),
                                                                                      torch.zeros(1, 400, 3, 2))
    first = step.seen[0]
    assert all(torch.equal(m, first) for m in step.seen)  # ts_inf: fixed over the horizon
    assert set(first.flatten().tolist()) == set(range(5))  # a random rotation per candidate reaches every member


def test_single_deterministic_network_reduces_to_the_plain_rollout_bit_for_bit():
    from adaptive_mbrl.models import DynamicsModel, EnsembleParticleStep, ModelConfig

    model = DynamicsModel(2, 2, ModelConfig(hidden_sizes=[16, 16]), seed=0).eval()
    model.fit_normalizers(torch.randn(40, 2), torch.rand(40, 2), torch.randn(40, 2))
    obs, actions = torch.randn(3, 2), torch.rand(3, 50, 6, 2) * 2 - 1
    plain = TrajectoryScorer(model.predict, reward)(obs, actions)
    for propagation in ("ts_inf", "ts_1", "mean"):
        scorer = TrajectoryScorer(EnsembleParticleStep(model), reward, particles=1, propagation=propagation, seed=0)
        assert torch.equal(scorer(obs, actions), plain), propagation
    many = TrajectoryScorer(EnsembleParticleStep(model), reward, particles=4, seed=0)(obs, actions)
    torch.testing.assert_close(many, plain)  # identical particles


def test_model_particles_follow_their_members_and_elites():
    from adaptive_mbrl.models import EnsembleParticleStep

    model = offset_model(ensemble=4, elites=2)
    model.set_elites([1, 3])
    states = []
    scorer = TrajectoryScorer(EnsembleParticleStep(model), record_states(states), particles=4, seed=0)
    scorer(torch.zeros(1, 2), torch.zeros(1, 3, 2, 2))
    increments = states[0][..., 0]  # [B, N, P]
    assert torch.equal(increments, torch.tensor([1.0, 3.0, 1.0, 3.0]).expand(1, 3, 4))  # elites only, p % K


def test_particle_averaging_reduces_score_variance_and_seed_reproduces():
    from adaptive_mbrl.models import DynamicsModel, EnsembleParticleStep, ModelConfig

    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=2, probabilistic=True)
    model = DynamicsModel(2, 2, cfg, seed=0).eval()
    obs, actions = torch.zeros(1, 2), torch.zeros(1, 400, 5, 2)  # 400 copies of one candidate
    spread = {}
    for particles in (1, 20):
        scorer = TrajectoryScorer(EnsembleParticleStep(model), reward, particles=particles, seed=0)
        with torch.inference_mode():
            spread[particles] = scorer(obs, actions).var().item()
    assert spread[20] < 0.1 * spread[1] and spread[1] > 0, spread  # ~1 / 20 for independent particles
    a, b, c = (TrajectoryScorer(EnsembleParticleStep(model), reward, particles=4, propagation="ts_1", seed=s)
               for s in (3, 3, 4))
    first = a(obs, actions[:, :8])
    assert torch.equal(first, b(obs, actions[:, :8])) and not torch.equal(first, c(obs, actions[:, :8]))
    assert not torch.equal(first, a(obs, actions[:, :8]))  # the generator moves on between calls


def test_particle_options_are_checked():
    from adaptive_mbrl.planning import PlannerConfig

    with pytest.raises(ValueError, match="needs a ParticleStep"):
        TrajectoryScorer(linear_step, reward, particles=2)
    with pytest.raises(ValueError, match="particles = 1"):
        TrajectoryScorer(OffsetEnsemble(2), reward, particles=2, propagation="mean")
    with pytest.raises(ValueError, match="propagation"):
        TrajectoryScorer(OffsetEnsemble(2), reward, propagation="ts_all")
    scorer = TrajectoryScorer.for_planner(OffsetEnsemble(2), reward, None,
                                          PlannerConfig(kind="cem", particles=4, propagation="ts_1"), seed=1)
    assert (scorer.particles, scorer.propagation, scorer.seed) == (4, "ts_1", 1)
