"""Sampling planners: optimum of known scores, elite axis, bounds, seeding, warm start."""
import pytest
import torch

from adaptive_mbrl.config import ConfigError, from_dict
from adaptive_mbrl.planning import (PlannerConfig, TrajectoryScorer, colored_noise, make_planner, select_elites,
                                    shift)

KINDS = ["random_shooting", "cem", "mppi", "icem"]


def quadratic(target):
    """score = -|actions - target|^2 summed over [H, a]; target [B, H, a]; argmax = target."""
    return lambda obs, actions: -((actions - target[:, None]) ** 2).sum(dim=(-1, -2))


def config(kind, **overrides):
    return from_dict(PlannerConfig, {"kind": kind, **overrides})


def test_config_validation():
    assert config("cem").horizon == 10 and config("cem").samples == 500
    with pytest.raises(ConfigError, match="elites"):
        config("cem", samples=10, elites=20)
    with pytest.raises(ConfigError, match="kind"):
        config("pso")
    with pytest.raises(ConfigError, match="smoothing"):
        config("cem", smoothing=1.0)
    with pytest.raises(ConfigError, match="required key"):
        from_dict(PlannerConfig, {})


def test_select_elites_uses_the_samples_axis():
    returns = torch.tensor([[0.0, 5.0, 1.0, 4.0], [9.0, 0.0, 8.0, 1.0]])  # [B=2, N=4]
    actions = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).reshape(2, 4, 3, 2)
    elites, top = select_elites(actions, returns, 2)
    torch.testing.assert_close(top, torch.tensor([[5.0, 4.0], [9.0, 8.0]]))
    assert torch.equal(elites[0, 0], actions[0, 1]) and torch.equal(elites[0, 1], actions[0, 3])
    assert torch.equal(elites[1, 0], actions[1, 0]) and torch.equal(elites[1, 1], actions[1, 2])


def test_cem_finds_per_environment_per_step_optimum():
    # Each environment and time step has its own optimum: elites picked over any other axis
    # (environments, horizon) or shared between environments would converge elsewhere.
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 6, 2, generator=gen) * 1.6 - 0.8
    planner = make_planner(config("cem", horizon=6, samples=300, elites=30, iterations=10), 2, seed=0)
    first = planner.plan(torch.zeros(3, 1), quadratic(target))
    assert (planner.last_plan - target).abs().max() < 0.05
    torch.testing.assert_close(first, planner.last_plan[:, 0])


@pytest.mark.parametrize("kind,overrides,tolerance", [
    ("icem", {"noise_beta": 0.0}, 0.1),
    ("icem", {"noise_beta": 2.0}, 0.3),  # brown noise: few high-frequency corrections on a 6-step horizon
    ("mppi", {"temperature": 0.3, "smoothing": 0.0}, 0.25),
])
def test_icem_and_mppi_get_close_to_optimum(kind, overrides, tolerance):
    ramp = torch.linspace(-0.7, 0.7, 6)[None, :, None] * torch.tensor([1.0, -1.0])
    target = torch.cat((ramp, 0.5 * ramp), dim=0)  # [2, 6, 2], smooth in time
    planner = make_planner(config(kind, horizon=6, samples=300, elites=30, iterations=12, **overrides), 2, seed=1)
    planner.plan(torch.zeros(2, 1), quadratic(target))
    assert (planner.last_plan - target).abs().max() < tolerance


def test_random_shooting_is_within_sampling_error():
    target = torch.tensor([[[0.3]], [[-0.6]]])  # [B=2, H=1, a=1]
    planner = make_planner(config("random_shooting", horizon=1, samples=500, elites=1), 1, seed=0)
    action = planner.plan(torch.zeros(2, 3), quadratic(target))
    # P(no uniform sample within 0.02 of the target) = 0.98^500 < 1e-4.
    assert (action - target[:, 0]).abs().max() < 0.02
    assert planner.warm_start_mean.abs().max() == 0  # no warm start for random shooting


@pytest.mark.parametrize("kind", KINDS)
def test_actions_stay_in_bounds(kind):
    target = torch.full((2, 5, 3), 3.0)
    target[1] = -3.0
    planner = make_planner(config(kind, horizon=5, samples=200, elites=20, iterations=4), 3, seed=0)
    for _ in range(2):
        action = planner.plan(torch.zeros(2, 1), quadratic(target))
        assert action.abs().max() <= 1.0 and planner.last_plan.abs().max() <= 1.0
    if kind != "random_shooting":
        assert (action[0] > 0.8).all() and (action[1] < -0.8).all()


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_plan(kind):
    target = torch.rand(2, 4, 2) - 0.5
    plans = []
    for seed in (7, 7, 8):
        planner = make_planner(config(kind, horizon=4, samples=64, elites=8, iterations=3), 2, seed=seed)
        plans.append(torch.stack([planner.plan(torch.zeros(2, 1), quadratic(target)) for _ in range(3)]))
    assert torch.equal(plans[0], plans[1])
    assert not torch.equal(plans[0], plans[2])


@pytest.mark.parametrize("kind", ["cem", "mppi", "icem"])
def test_warm_start_shifts_previous_solution_and_reset_clears(kind):
    target = torch.rand(2, 5, 2) - 0.5
    planner = make_planner(config(kind, horizon=5, samples=100, elites=10, iterations=3), 2, seed=0)
    planner.plan(torch.zeros(2, 1), quadratic(target))
    mean = planner.warm_start_mean
    assert mean.shape == (2, 5, 2) and torch.equal(mean[:, -1], torch.zeros(2, 2))
    if kind != "icem":  # cem / mppi execute their mean
        torch.testing.assert_close(mean[:, :-1], planner.last_plan[:, 1:])
    torch.testing.assert_close(mean, shift(mean.roll(1, dims=1)))
    # The next plan starts from the shifted mean: with the target shifted too, it starts near the optimum.
    seen = []
    planner.plan(torch.zeros(2, 1), lambda obs, a: seen.append(a.clone()) or quadratic(target)(obs, a))
    assert (seen[0].mean(1)[:, :-1] - mean[:, :-1]).abs().max() < 0.15
    planner.reset([1])
    assert torch.equal(planner.warm_start_mean[1], torch.zeros(5, 2))
    assert planner.warm_start_mean[0].abs().sum() > 0
    planner.reset()
    assert planner.warm_start_mean is None
    planner.plan(torch.zeros(3, 1), quadratic(torch.zeros(3, 5, 2)))  # a new batch size starts afresh
    assert planner.warm_start_mean.shape == (3, 5, 2)


def test_warm_start_can_be_disabled():
    planner = make_planner(config("cem", horizon=3, samples=50, elites=5, iterations=2, warm_start=False), 1, seed=0)
    planner.plan(torch.zeros(1, 1), quadratic(torch.full((1, 3, 1), 0.5)))
    assert planner.warm_start_mean.abs().max() == 0


def test_diverged_rollouts_are_never_chosen():
    def score(obs, actions):
        value = -(actions - 0.9).square().sum(dim=(-1, -2))
        return torch.where(actions[..., 0, 0] > 0, torch.full_like(value, float("nan")), value)

    for kind in KINDS:
        planner = make_planner(config(kind, horizon=2, samples=100, elites=10, iterations=3), 1, seed=0)
        assert planner.plan(torch.zeros(1, 1), score).item() <= 0.0, kind


def test_icem_sample_schedule_keeps_elites_and_tries_the_mean():
    counts = []
    planner = make_planner(config("icem", horizon=4, samples=100, elites=10, iterations=4, keep_elites=0.3,
                                  sample_decay=2.0), 2, seed=0)
    score = quadratic(torch.zeros(1, 4, 2))
    planner.plan(torch.zeros(1, 1), lambda obs, a: counts.append(a.shape[1]) or score(obs, a))
    assert counts == [100, 50 + 3, 25 + 3, 20 + 3 + 1]
    counts.clear()
    planner.plan(torch.zeros(1, 1), lambda obs, a: counts.append(a.shape[1]) or score(obs, a))
    assert counts[0] == 100 + 3  # the previous step's elites, shifted


def test_colored_noise_is_unit_variance_and_smoother_with_beta():
    gen = torch.Generator().manual_seed(0)
    lag1 = []
    for beta in (0.0, 1.0, 2.0):
        x = colored_noise((4000, 10, 3), beta, gen)
        assert abs(x.var().item() - 1.0) < 0.05 and abs(x.mean().item()) < 0.05
        lag1.append((x[:, 1:] * x[:, :-1]).mean().item())
    assert abs(lag1[0]) < 0.05 and lag1[0] < lag1[1] < lag1[2] and lag1[2] > 0.5


def test_planning_through_true_dynamics_beats_random_actions():
    """Double integrator (dt 0.1), drive the position to 0: MPC with CEM vs uniform random actions."""
    def step(obs, act):
        pos, vel = obs[..., :1], obs[..., 1:]
        return torch.cat((pos + 0.1 * vel, vel + 0.1 * act), -1)

    def reward(obs, act, next_obs):
        return -next_obs[..., 0] ** 2 - 0.1 * next_obs[..., 1] ** 2 - 0.01 * (act * act).sum(-1)

    scorer = TrajectoryScorer(step, reward)
    gen = torch.Generator().manual_seed(0)
    totals = {}
    for name in ("cem", "random"):
        planner = make_planner(config("cem", horizon=15, samples=100, elites=10, iterations=4), 1, seed=0)
        obs, total = torch.tensor([[1.0, 0.0]]), 0.0
        for _ in range(40):
            act = planner.plan(obs, scorer) if name == "cem" else torch.rand(1, 1, generator=gen) * 2 - 1
            nxt = step(obs, act)
            total += reward(obs, act, nxt).item()
            obs = nxt
        totals[name] = total
        if name == "cem":
            assert abs(obs[0, 0].item()) < 0.3
    assert totals["cem"] > 0.5 * totals["random"]  # returns are negative: at least 2x less cost


def test_plan_output_is_an_ordinary_tensor():
    planner = make_planner(config("cem", horizon=3, samples=20, elites=4, iterations=2), 2, seed=0)
    action = planner.plan(torch.zeros(1, 1), quadratic(torch.zeros(1, 3, 2)))
    assert not action.is_inference() and not planner.last_plan.is_inference()
    action.add_(1.0)  # in-place use by a caller outside inference mode works


# Third plan of each planner through a seeded deterministic 3-member ensemble, pinned before particles and
# `execute` were added (the default path must not move).
PINNED_PLANS = {
    "random_shooting": [[-0.4580329656600952, -0.7850370407104492], [-0.6149030923843384, -0.7946093082427979]],
    "cem": [[-0.9512683749198914, -0.972213625907898], [-0.7126542329788208, -0.9925566911697388]],
    "mppi": [[-0.4163074195384979, -0.5574437379837036], [-0.33473536372184753, -0.5241348147392273]],
    "icem": [[-0.6569828391075134, -1.0], [-0.7943047881126404, -1.0]],
}


@pytest.mark.parametrize("kind", KINDS)
def test_default_plans_through_a_deterministic_model_are_pinned(kind):
    from adaptive_mbrl.models import DynamicsModel, ModelConfig

    model = DynamicsModel(5, 2, ModelConfig(hidden_sizes=[32, 32], ensemble_size=3), seed=0)
    gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    model.fit_normalizers(torch.randn(50, 5, generator=gen(0)), torch.rand(50, 2, generator=gen(3)),
                          torch.randn(50, 5, generator=gen(1)))
    scorer = TrajectoryScorer(model.predict, lambda o, a, n: n[..., 0] - 0.1 * (a * a).sum(-1))
    planner = make_planner(PlannerConfig(kind=kind, horizon=5, samples=64, elites=8, iterations=3), 2, seed=0)
    obs = torch.randn(2, 5, generator=gen(2))
    for _ in range(3):
        action = planner.plan(obs, scorer)
    torch.testing.assert_close(action, torch.tensor(PINNED_PLANS[kind]), rtol=0.0, atol=1e-6)


def test_particle_and_execute_config_validation():
    cfg = config("cem")
    assert (cfg.particles, cfg.propagation, cfg.execute) == (1, "ts_inf", None)
    assert config("icem", particles=20, propagation="ts_1", execute="elite_mean").particles == 20
    with pytest.raises(ConfigError, match="particles"):
        config("cem", particles=0)
    with pytest.raises(ConfigError, match="propagation"):
        config("cem", propagation="ts_all")
    with pytest.raises(ConfigError, match="particles must be 1"):
        config("cem", propagation="mean", particles=5)
    with pytest.raises(ConfigError, match="execute applies to cem and icem only"):
        config("mppi", execute="best")
    with pytest.raises(ConfigError, match="execute"):
        config("cem", execute="mean")


def noisy_quadratic(target, noise_scale, seed):
    """quadratic() plus fresh Gaussian noise on every score (std ``noise_scale``): the best single sample is
    often a lucky draw, the elites' mean averages that luck out."""
    gen = torch.Generator().manual_seed(seed)

    def score(obs, actions):
        clean = -((actions - target[:, None]) ** 2).sum(dim=(-1, -2))
        return clean + noise_scale * torch.randn(clean.shape, generator=gen)
    return score


@pytest.mark.parametrize("kind", ["cem", "icem"])
def test_execute_best_returns_the_best_scored_sample_and_elite_mean_the_final_mean(kind):
    target = torch.rand(2, 4, 2, generator=torch.Generator().manual_seed(0)) - 0.5
    seen = []

    def recording(obs, actions):
        returns = quadratic(target)(obs, actions)
        seen.append((actions.clone(), returns.clone()))
        return returns

    plans = {}
    for execute in ("best", "elite_mean"):
        seen.clear()
        planner = make_planner(config(kind, horizon=4, samples=60, elites=6, iterations=3, execute=execute), 2,
                               seed=0)
        planner.plan(torch.zeros(2, 1), recording)
        plans[execute] = planner.last_plan
        actions = torch.cat([a for a, _ in seen], 1)
        returns = torch.cat([r for _, r in seen], 1)
        best = actions[torch.arange(2), returns.argmax(1)]
        if execute == "best":
            torch.testing.assert_close(planner.last_plan, best)
        else:  # the warm start is the final mean, and the executed plan is that mean
            torch.testing.assert_close(planner.warm_start_mean[:, :-1], planner.last_plan[:, 1:])
            assert not torch.equal(planner.last_plan, best)
    default = make_planner(config(kind, horizon=4, samples=60, elites=6, iterations=3), 2, seed=0)
    default.plan(torch.zeros(2, 1), quadratic(target))
    torch.testing.assert_close(default.last_plan, plans["elite_mean" if kind == "cem" else "best"])


def test_elite_mean_beats_best_sample_under_noisy_scores():
    """With noisy scores (as with sampled particles) the best sample is partly luck; the elites' mean is closer."""
    target = torch.rand(8, 4, 2, generator=torch.Generator().manual_seed(1)) - 0.5
    errors = {}
    for execute in ("best", "elite_mean"):
        planner = make_planner(config("cem", horizon=4, samples=100, elites=10, iterations=4, execute=execute), 2,
                               seed=0)
        planner.plan(torch.zeros(8, 1), noisy_quadratic(target, 1.0, seed=0))
        errors[execute] = (planner.last_plan - target).square().sum(dim=(1, 2)).mean().item()
    assert errors["elite_mean"] < 0.5 * errors["best"], errors


@pytest.mark.parametrize("kind", KINDS)
def test_every_planner_plans_through_particle_rollouts(kind):
    """Each planner scores through the particle scorer: rows [B, N, P, o] per step, P particles per candidate."""
    calls = []

    class Step:
        num_members = 2

        def __call__(self, state, act, members, generator):
            calls.append(state.shape)
            noise = torch.randn(state.shape, generator=generator)
            return torch.cat((state[..., :1] + act[:, :, None, :1] + 0.01 * noise[..., :1], state[..., 1:]), -1)

    extra = {"temperature": 0.01, "smoothing": 0.0} if kind == "mppi" else {}
    planner = make_planner(config(kind, horizon=1, samples=200, elites=20, iterations=4, particles=4, **extra), 1,
                           seed=0)
    scorer = TrajectoryScorer.for_planner(Step(), lambda o, a, n: -(n[..., 0] - 0.5) ** 2, None, planner.config,
                                          seed=0)
    action = planner.plan(torch.zeros(2, 2), scorer)
    assert all(shape[0] == 2 and shape[2:] == (4, 2) for shape in calls) and len(calls) >= 1
    assert (action - 0.5).abs().max() < (0.05 if kind != "random_shooting" else 0.02), action


def test_plan_refuses_a_scorer_that_would_ignore_the_particle_settings():
    class Step:
        num_members = 1

        def __call__(self, state, act, members, generator):
            return state + act[:, :, None, :1]

    reward = lambda o, a, n: -n[..., 0].abs()  # noqa: E731
    planner = make_planner(config("cem", horizon=2, samples=20, elites=4, iterations=1, particles=4), 1, seed=0)
    with pytest.raises(ValueError, match="particles=4.*particles=1.*for_planner"):
        planner.plan(torch.zeros(1, 1), TrajectoryScorer(lambda o, a: o + a, reward))
    with pytest.raises(ValueError, match="propagation"):
        planner.plan(torch.zeros(1, 1), TrajectoryScorer(Step(), reward, particles=4, propagation="ts_1"))
    scorer = TrajectoryScorer.for_planner(Step(), reward, None, planner.config, seed=0)
    assert planner.plan(torch.zeros(1, 1), scorer).shape == (1, 1)
    plain = make_planner(config("cem", horizon=2, samples=20, elites=4, iterations=1, propagation="ts_1"), 1)
    plain.plan(torch.zeros(1, 1), TrajectoryScorer(lambda o, a: o + a, reward))  # plain step: nothing to ignore
