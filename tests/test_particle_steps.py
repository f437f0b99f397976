"""GroupedParticleStep: environment b's particles through its own adapted weights / contexts."""
import torch

from adaptive_mbrl.adaptation.particle_steps import GroupedParticleStep
from adaptive_mbrl.models import DynamicsModel, ModelConfig, call_with_params

O, A, C = 3, 2, 2


def test_round_robin_layout_matches_the_sorted_blocks_and_each_environments_context():
    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=4, probabilistic=True, context_dim=C)
    m = DynamicsModel(O, A, cfg, seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    contexts = torch.randn(3, 4, C, generator=gen)  # [B, E, c]
    step = GroupedParticleStep(m, contexts=contexts)
    state, act = torch.randn(3, 5, 8, O, generator=gen), torch.rand(3, 5, A, generator=gen)
    members = torch.arange(8) % 4
    fast = step(state, act, members, torch.Generator().manual_seed(1))
    assert torch.equal(fast, step(state, act, members.expand(3, 5, 8), torch.Generator().manual_seed(1)))
    # without sampling: particle p of environment b is member p % 4 under environment b's context for it
    mean = step(state, act, members, None)
    for b in range(3):
        for p in range(8):
            e = p % 4
            expected = m.predict(state[b, :, p], act[b], contexts[b, e].expand(5, C), member=e)
            torch.testing.assert_close(mean[b, :, p], expected)


def test_block_weights_are_gathered_once_while_the_blocks_repeat():
    """A planning call evaluates the same blocks at every horizon step: their weights are gathered once
    (all B E blocks in order: the stacked weights themselves), and a new block list gathers anew."""
    cfg = ModelConfig(hidden_sizes=[16], ensemble_size=3, probabilistic=True)
    m = DynamicsModel(O, A, cfg, seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    params = {n: p.detach()[None] + 0.1 * torch.randn(2, *p.shape, generator=gen)
              for n, p in m.named_parameters() if n.startswith("layers.")}  # [B=2, E=3, ...]
    step = GroupedParticleStep(m, params=params)
    state, act = torch.randn(2, 4, 3, O, generator=gen), torch.rand(2, 4, A, generator=gen)
    mean = step(state, act, None, None)
    gathered = step._gathered
    assert all(gathered[n] is step.params[n] for n in params)  # every block in order: no copy
    torch.testing.assert_close(step(state, act, None, None), mean)
    assert step._gathered is gathered
    for b in range(2):  # environment b's particles through its own weights, averaged over the members
        own = {n: v[b] for n, v in params.items()}
        expected = call_with_params(m, own, "predict", state[b], act[b][:, None, :].expand(4, 3, A))
        torch.testing.assert_close(mean[b], expected)
    one_member = step(state, act, torch.zeros(3, dtype=torch.long), torch.Generator().manual_seed(1))
    assert step._gathered is not gathered and next(iter(step._gathered.values())).shape[0] == 2  # member 0 of each env
    assert one_member.shape == state.shape
