"""GroupedParticleStep: environment b's particles through its own adapted weights / contexts."""
import torch

from adaptive_mbrl.adaptation.particle_steps import GroupedParticleStep
from adaptive_mbrl.models import DynamicsModel, ModelConfig

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
