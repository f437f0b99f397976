"""EnsembleParticleStep: each particle row goes through its member, in one stacked call per step."""
import pytest
import torch

from adaptive_mbrl.models import DynamicsModel, EnsembleParticleStep, ModelConfig
from adaptive_mbrl.planning import ParticleStep

O, A = 3, 2


def model(ensemble=4, elites=0, probabilistic=False, seed=0):
    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=ensemble, elites=elites, probabilistic=probabilistic)
    m = DynamicsModel(O, A, cfg, seed=seed)
    gen = torch.Generator().manual_seed(1)
    m.fit_normalizers(torch.randn(64, O, generator=gen), torch.rand(64, A, generator=gen),
                      2.0 * torch.randn(64, O, generator=gen))
    return m.eval()


class LayerCalls:
    """Counts the input shapes seen by the first layer of a model."""

    def __init__(self, m):
        self.shapes = []
        m.layers[0].register_forward_hook(lambda mod, args, out: self.shapes.append(tuple(args[0].shape)))


@pytest.mark.parametrize("particles,members_shape", [(8, "P"), (8, "BNP"), (6, "BNP")])
def test_each_row_is_its_members_prediction(particles, members_shape):
    m = model(ensemble=4)
    step = EnsembleParticleStep(m)
    assert isinstance(step, ParticleStep) and step.num_members == 4
    gen = torch.Generator().manual_seed(0)
    state, act = torch.randn(2, 5, particles, O, generator=gen), torch.rand(2, 5, A, generator=gen) * 2 - 1
    if members_shape == "P":
        members = torch.arange(particles) % 4
    else:  # 8 particles: balanced per candidate; 6: unbalanced -> every member on every row
        members = torch.rand(2, 5, particles, generator=gen).argsort(-1) % 4
    calls = LayerCalls(m)
    out = step(state, act, members, torch.Generator().manual_seed(0))
    shapes = list(calls.shapes)
    assert out.shape == state.shape
    full = members.expand(2, 5, particles)
    every = m.predict(state, act[:, :, None].expand(2, 5, particles, A), member="all")  # [E, B, N, P, o]
    expected = every.gather(0, full[None, ..., None].expand(1, 2, 5, particles, O))[0]
    torch.testing.assert_close(out, expected)
    rows = 2 * 5 * particles
    balanced = particles % 4 == 0
    assert shapes == ([(4, rows // 4, O + A)] if balanced else [(rows, O + A)])


def test_elites_only_and_stacked_subset_of_members():
    m = model(ensemble=5, elites=2)
    m.set_elites([1, 4])
    step = EnsembleParticleStep(m)
    assert step.num_members == 2
    state, act = torch.randn(3, 4, 2, O), torch.rand(3, 4, A)
    calls = LayerCalls(m)
    out = step(state, act, torch.tensor([0, 1]), None)
    assert calls.shapes == [(2, 12, O + A)]  # one stacked call over the two elites (before the checks below)
    act_p = act[:, :, None].expand(3, 4, 2, A)
    torch.testing.assert_close(out[:, :, 0], m.predict(state[:, :, 0], act_p[:, :, 0], member=1))
    torch.testing.assert_close(out[:, :, 1], m.predict(state[:, :, 1], act_p[:, :, 1], member=4))
    torch.testing.assert_close(step(state, act, None, None), m.predict(state, act_p))  # 'mean': the elites' mean


def test_probabilistic_particles_are_sampled_from_their_members_gaussian():
    m = model(ensemble=2, probabilistic=True)
    step = EnsembleParticleStep(m)
    state = torch.zeros(1, 1, 4000, O).expand(1, 1, 4000, O)
    act = torch.zeros(1, 1, A)
    members = torch.arange(4000) % 2
    out = step(state, act, members, torch.Generator().manual_seed(0))
    again = step(state, act, members, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    for e in range(2):
        mean, var = m.predict_distribution(torch.zeros(1, O), torch.zeros(1, A), member=e)
        draws = out[0, 0, e::2]
        assert ((draws.mean(0) - mean[0]).abs() < 4 * (var[0] / 2000).sqrt()).all()
        torch.testing.assert_close(draws.var(0), var[0], rtol=0.1, atol=0)


def test_single_network_with_context():
    cfg = ModelConfig(hidden_sizes=[8], context_dim=2)
    m = DynamicsModel(O, A, cfg, seed=0)
    ctx = torch.randn(3, 1, 1, 2)  # one context per environment
    state, act = torch.randn(3, 4, 5, O), torch.rand(3, 4, A)
    out = EnsembleParticleStep(m, ctx)(state, act, torch.zeros(5, dtype=torch.long), None)
    expected = m.predict(state, act[:, :, None].expand(3, 4, 5, A), ctx.expand(3, 4, 5, 2))
    assert torch.equal(out, expected)


@pytest.mark.parametrize("elites", [0, 3])
def test_round_robin_layout_gives_the_sorted_paths_numbers_and_draws(elites):
    """TS-inf's round-robin assignment skips the sort by member; the per-candidate copy of the same assignment
    still goes through the sort. Both must give the same samples (same rows in the same stacked order)."""
    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=5, elites=elites, probabilistic=True, context_dim=2)
    m = DynamicsModel(O, A, cfg, seed=3).eval()
    if elites:
        m.set_elites([0, 2, 4])
    k = m.drawable_members.numel()
    gen = torch.Generator().manual_seed(0)
    state, act = torch.randn(2, 7, 2 * k, O, generator=gen), torch.rand(2, 7, A, generator=gen)
    step = EnsembleParticleStep(m, torch.randn(2, 1, 1, 2, generator=gen))
    members = torch.arange(2 * k) % k
    fast = step(state, act, members, torch.Generator().manual_seed(5))
    sorted_path = step(state, act, members.expand(2, 7, 2 * k), torch.Generator().manual_seed(5))
    assert torch.equal(fast, sorted_path)
    rotated = step(state, act, (members + 1) % k, torch.Generator().manual_seed(5))  # not round-robin from 0
    assert not torch.equal(fast, rotated)


def test_round_robin_is_recognised_only_for_arange_mod_k():
    from adaptive_mbrl.models.particles import is_round_robin
    assert is_round_robin(torch.arange(10) % 5, 10, 5)
    assert not is_round_robin(torch.arange(10) % 5, 10, 2)       # wrong K
    assert not is_round_robin((torch.arange(10) + 1) % 5, 10, 5)  # rotated
    assert not is_round_robin(torch.arange(6) % 4, 6, 4)          # P not a multiple of K
    assert not is_round_robin((torch.arange(10) % 5).expand(2, 10), 10, 5)
    assert not is_round_robin(None, 10, 5)
