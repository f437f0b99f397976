"""ReBAL adapter: the context changes predictions, meta-training lowers the K-step loss, reset restores the
empty-window context, short windows, batched prediction and checkpointed encoder state."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from adaptive_mbrl.adaptation import AdapterConfig, make_adapter
from adaptive_mbrl.adaptation.rebal import ReBALAdapter
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.training.meta_train import make_meta_optimizer
from tests.test_grbal import ACT, OBS, _system

PAST, FUTURE = 16, 16


def _model(seed: int = 0) -> DynamicsModel:
    return DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[32, 32], context_dim=4), seed=seed)


def _config(cell: str = "gru") -> AdapterConfig:
    return AdapterConfig(kind="rebal", window=PAST, encoder=cell, encoder_hidden=16)


def _train(adapter: ReBALAdapter, obs, act, nxt, updates: int, rng: np.random.Generator) -> list[float]:
    optimizer = make_meta_optimizer(adapter.model, adapter, 3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(updates):
        task = torch.as_tensor(rng.integers(0, obs.shape[0], 16))
        start = torch.as_tensor(rng.integers(0, obs.shape[1] - PAST - FUTURE, 16))
        rows = start[:, None] + torch.arange(PAST + FUTURE)
        loss, _ = adapter.meta_loss(*(t[task[:, None], rows] for t in (obs, act, nxt)), PAST, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained() -> tuple[ReBALAdapter, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs, act, nxt = _system(64, 100, rng.choice([-1.0, -0.5, 0.5, 1.0], 64), seed=7)
    model = _model()
    model.fit_normalizers(obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS))
    adapter = make_adapter(model, _config())
    assert isinstance(adapter, ReBALAdapter)
    losses = _train(adapter, obs, act, nxt, 250, rng)
    return adapter, (obs, act, nxt, torch.tensor(losses))


def _held_out(adapter: ReBALAdapter, adapt: bool) -> float:
    gains = np.array([0.75, -0.75, 1.5, -1.5] * 5)
    obs, act, nxt = _system(len(gains), PAST + FUTURE, gains, seed=8)
    total = 0.0
    for b in range(len(gains)):
        adapter.reset()
        if adapt:
            adapter.adapt(obs[b, :PAST], act[b, :PAST], nxt[b, :PAST])
        with torch.no_grad():
            total += (adapter.predict(obs[b, PAST:], act[b, PAST:]) - nxt[b, PAST:]).square().mean().item()
    return total / len(gains)


def test_meta_training_lowers_the_k_step_loss_and_the_context_is_what_helps(trained) -> None:
    adapter, (*_, losses) = trained
    assert losses[-50:].mean() < 0.3 * losses[:10].mean()
    without, with_context = _held_out(adapter, adapt=False), _held_out(adapter, adapt=True)
    print(f"ReBAL held-out one-step MSE: empty-window context {without:.4f}, window context {with_context:.4f}")
    assert with_context < 0.5 * without


def test_context_changes_predictions_and_reset_restores_the_prior(trained) -> None:
    adapter, (obs, act, nxt, _) = trained
    adapter.reset()
    prior_context = adapter.context.clone()
    query = torch.randn(6, OBS), torch.rand(6, ACT)
    prior_pred = adapter.predict(*query)
    adapter.adapt(obs[0, :PAST], act[0, :PAST], nxt[0, :PAST])
    assert not torch.allclose(adapter.context, prior_context)
    assert (adapter.predict(*query) - prior_pred).abs().max() > 1e-3
    adapter.reset()
    assert torch.equal(adapter.context, prior_context)
    assert torch.equal(adapter.predict(*query), prior_pred)


def test_short_and_empty_windows_and_masking(trained) -> None:
    """Fewer than M transitions: the encoder reads what there is; a masked step leaves the state as it is."""
    adapter, (obs, act, nxt, _) = trained
    adapter.adapt(obs[0, :0], act[0, :0], nxt[0, :0])
    empty = adapter.context.clone()
    adapter.reset()
    assert torch.equal(adapter.context, empty)
    adapter.adapt(obs[0, :3], act[0, :3], nxt[0, :3])
    three = adapter.context.clone()
    assert not torch.allclose(three, empty)
    mask = torch.tensor([[False] * 5 + [True] * 3])
    with torch.no_grad():
        masked = adapter.encode(obs[:1, :8][:, [0, 0, 0, 0, 0, 0, 1, 2]], act[:1, :8][:, [0, 0, 0, 0, 0, 0, 1, 2]],
                                nxt[:1, :8][:, [0, 0, 0, 0, 0, 0, 1, 2]], mask)
    torch.testing.assert_close(masked[0], three)


def test_batch_predict_matches_each_adapter(trained) -> None:
    adapter, (obs, act, nxt, _) = trained
    adapters = [make_adapter(adapter.model, _config()) for _ in range(3)]
    for a in adapters:
        a.load_state_dict(adapter.state_dict())
    adapters[0].adapt(obs[0, :PAST], act[0, :PAST], nxt[0, :PAST])
    adapters[1].adapt(obs[5, :7], act[5, :7], nxt[5, :7])
    q_obs, q_act = torch.randn(3, 9, OBS), torch.rand(3, 9, ACT)
    with torch.inference_mode():
        batched = ReBALAdapter.batch_predict(adapters)(q_obs, q_act)
    for e, a in enumerate(adapters):
        torch.testing.assert_close(batched[e], a.predict(q_obs[e], q_act[e]))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_state_dict_round_trip_and_mismatch(cell: str) -> None:
    model = _model()
    first, second = make_adapter(model, _config(cell)), make_adapter(model, _config(cell))
    with torch.no_grad():
        for p in first.learned.parameters():
            p.add_(0.1)
    first.reset()
    second.load_state_dict(first.state_dict())
    assert torch.equal(first.context, second.context)
    other = make_adapter(model, AdapterConfig(kind="rebal", encoder=cell, encoder_hidden=8))
    with pytest.raises(ValueError, match="adapter state does not fit"):
        other.load_state_dict(first.state_dict())


def test_rebal_needs_a_context_input() -> None:
    with pytest.raises(ValueError, match="context_dim"):
        make_adapter(DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[8])), _config())


def _gated_pair(adapter: ReBALAdapter, state: dict) -> tuple[ReBALAdapter, ReBALAdapter]:
    """(ungated, gated) adapters around the trained model with the encoder ``state``."""
    pair = []
    for gate in (False, True):
        other = make_adapter(adapter.model, dataclasses.replace(_config(), context_gate=gate))
        other.load_state_dict(state)
        pair.append(other)
    return pair[0], pair[1]


def _future_error(adapter: ReBALAdapter, obs, act, nxt) -> float:
    adapter.reset()
    adapter.adapt(obs[:PAST], act[:PAST], nxt[:PAST])
    with torch.no_grad():
        return (adapter.predict(obs[PAST:], act[PAST:]) - nxt[PAST:]).square().mean().item()


def test_context_gate_keeps_a_context_that_explains_the_window(trained) -> None:
    adapter, (obs, act, nxt, _) = trained
    plain, gated = _gated_pair(adapter, adapter.state_dict())
    kept = 0
    for b in range(8):
        errors = _future_error(plain, obs[b], act[b], nxt[b]), _future_error(gated, obs[b], act[b], nxt[b])
        kept += gated.gate_open
        if gated.gate_open:
            assert torch.equal(gated.context, plain.context) and errors[0] == errors[1]
    assert kept >= 7  # on training tasks the meta-trained context fits the window


def test_context_gate_falls_back_to_the_prior_when_the_encoder_is_wrong(trained) -> None:
    """An encoder that maps every window far from the contexts it was trained with (what an unseen task can
    do to it) fits the window worse than the empty-window context: the gate plans with the prior. (Scaling
    the head's weights leaves the empty-window context, the head's bias, as trained.)"""
    adapter, (obs, act, nxt, _) = trained
    state = adapter.state_dict()
    scrambled = {k: (20.0 * v if k == "head.weight" else v) for k, v in state.items()}
    plain, gated = _gated_pair(adapter, scrambled)
    for b in range(4):
        plain_error = _future_error(plain, obs[b], act[b], nxt[b])
        gated_error = _future_error(gated, obs[b], act[b], nxt[b])
        assert not gated.gate_open and torch.equal(gated.context, gated.empty_context)
        assert gated_error < plain_error


# --- ensembles (PETS-style) ---------------------------------------------------------------------------------
from adaptive_mbrl.adaptation.meta_losses import context_loss  # noqa: E402
from adaptive_mbrl.adaptation.rebal import EnsembleRecurrentEncoder, RecurrentEncoder  # noqa: E402


def _ensemble(members: int = 3, probabilistic: bool = True) -> DynamicsModel:
    torch.manual_seed(0)
    obs, act, nxt = _system(8, 40, np.ones(8), seed=0)
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[16], context_dim=4, ensemble_size=members,
                                                probabilistic=probabilistic), seed=0)
    model.fit_normalizers(obs.reshape(-1, OBS), act.reshape(-1, ACT), nxt.reshape(-1, OBS))
    return model


def _pe_config(per_member: bool, **kw) -> AdapterConfig:
    return dataclasses.replace(_config(), encoder_per_member=per_member, **kw)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_per_member_encoder_is_e_torch_cells_in_one(cell: str) -> None:
    """With member e's weights copied from its own nn.GRUCell / nn.LSTMCell encoder, the batched encoder gives
    each member's context (shared windows, per-member windows, masks)."""
    torch.manual_seed(1)
    singles = [RecurrentEncoder(OBS, ACT, 4, 8, cell) for _ in range(3)]
    batched = EnsembleRecurrentEncoder(3, OBS, ACT, 4, 8, cell)
    with torch.no_grad():
        batched.weight_ih.copy_(torch.stack([s.cell.weight_ih.T for s in singles]))
        batched.weight_hh.copy_(torch.stack([s.cell.weight_hh.T for s in singles]))
        batched.bias_ih.copy_(torch.stack([s.cell.bias_ih[None] for s in singles]))
        batched.bias_hh.copy_(torch.stack([s.cell.bias_hh[None] for s in singles]))
        batched.head_weight.copy_(torch.stack([s.head.weight.T for s in singles]))
        batched.head_bias.copy_(torch.stack([s.head.bias[None] for s in singles]))
    shared, own = torch.randn(5, 6, 2 * OBS + ACT), torch.randn(3, 5, 6, 2 * OBS + ACT)
    mask = torch.rand(3, 5, 6) < 0.7
    out_shared, out_own = batched(shared, mask[0]), batched(own, mask)
    assert out_shared.shape == (3, 5, 4)
    for e, single in enumerate(singles):
        torch.testing.assert_close(out_shared[e], single(shared, mask[0]))
        torch.testing.assert_close(out_own[e], single(own[e], mask[e]))


@pytest.mark.parametrize("per_member", [False, True])
def test_particle_step_applies_the_context_to_every_member(per_member: bool) -> None:
    model = _ensemble()
    adapter = make_adapter(model, _pe_config(per_member))
    obs, act, nxt = (t[0] for t in _system(1, PAST, np.array([-1.0]), seed=3))
    adapter.adapt(obs, act, nxt)
    contexts = adapter.context.expand(3, 4)  # [E, c]: the same for every member unless per member
    assert contexts.shape == (3, 4) and (not per_member or (contexts[0] - contexts[1]).abs().max() > 1e-4)
    state, action = torch.randn(1, 5, 6, OBS), torch.rand(1, 5, ACT)
    members = torch.tensor([0, 1, 2, 2, 1, 0])
    step = adapter.particle_step()
    with torch.inference_mode():
        out = step(state, action, members, torch.Generator().manual_seed(0))
        mean = step(state, action, None, None)
        means = []
        for k in range(3):
            means.append(model.predict_distribution(state[0, :, 0], action[0], contexts[k].expand(5, 4), member=k)[0])
            sample = model.predict(state[0, :, 0], action[0], contexts[k].expand(5, 4), member=k,
                                   sample=torch.Generator().manual_seed(0))
            assert sample.shape == (5, OBS)
        for p, k in enumerate(members.tolist()):  # samples spread around member k's mean with its context
            spread = model.predict_distribution(state[0, :, p], action[0], contexts[k].expand(5, 4), member=k)
            z = (out[0, :, p] - spread[0]) / spread[1].sqrt()
            assert z.abs().max() < 6
        torch.testing.assert_close(mean[0, :, 0], torch.stack(means).mean(0))
        torch.testing.assert_close(mean[0, :, 0], adapter.predict(state[0, :, 0], action[0]))
        adapter.reset()
        assert (adapter.particle_step()(state, action, None, None) - mean).abs().max() > 1e-4


@pytest.mark.parametrize("per_member", [False, True])
def test_batch_particle_step_and_batch_predict_use_each_adapters_context(per_member: bool) -> None:
    model = _ensemble(probabilistic=False)
    adapters = [make_adapter(model, _pe_config(per_member)) for _ in range(3)]
    data = _system(3, PAST, np.array([-1.0, 0.5, 2.0]), seed=6)
    for e in range(2):
        adapters[e].adapt(data[0][e], data[1][e], data[2][e])
    state, action = torch.randn(3, 4, 6, OBS), torch.rand(3, 4, ACT)
    members = torch.randint(3, (3, 4, 6), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        batched = ReBALAdapter.batch_particle_step(adapters)
        out, mean = batched(state, action, members, None), batched(state, action, None, None)
        predicted = ReBALAdapter.batch_predict(adapters)(state[:, :, 0], action)
        for b, adapter in enumerate(adapters):
            own = adapter.particle_step()
            torch.testing.assert_close(out[b:b + 1], own(state[b:b + 1], action[b:b + 1], members[b:b + 1], None))
            torch.testing.assert_close(mean[b:b + 1], own(state[b:b + 1], action[b:b + 1], None, None))
            torch.testing.assert_close(predicted[b], adapter.predict(state[b, :, 0], action[b]))
            for n in range(4):  # particle (n, p) on member k: member k's prediction with its context
                for p, k in enumerate(members[b, n].tolist()):
                    context = adapter.context[k] if per_member else adapter.context
                    expected = model.predict(state[b, n, p], action[b, n], context, member=k)
                    torch.testing.assert_close(out[b, n, p], expected)
    assert (out[0] - out[2]).abs().max() > 1e-4


@pytest.mark.parametrize("per_member", [False, True])
def test_pe_rebal_meta_training_lowers_the_nll_on_per_member_segments(per_member: bool) -> None:
    """Probabilistic ensemble, each member its own segments [E, B, M+K]: the NLL meta-loss falls and every
    member's encoder (per member) gets gradients."""
    rng = np.random.default_rng(0)
    obs, act, nxt = _system(32, 60, rng.choice([-1.0, -0.5, 0.5, 1.0], 32), seed=7)
    model = _ensemble()
    adapter = make_adapter(model, _pe_config(per_member))
    optimizer = make_meta_optimizer(model, adapter, 3e-3)
    generator, losses = torch.Generator().manual_seed(0), []
    for step in range(60):
        task = torch.as_tensor(rng.integers(0, 32, (3, 8)))
        start = torch.as_tensor(rng.integers(0, 60 - PAST - FUTURE, (3, 8)))
        rows = start[..., None] + torch.arange(PAST + FUTURE)
        seg = [t[task[..., None], rows] for t in (obs, act, nxt)]
        loss, prior = adapter.meta_loss(*seg, PAST, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        if step == 0 and per_member:
            assert all(g.abs().flatten(1).sum(1).min() > 0 for g in (adapter.learned.weight_ih.grad,
                                                                    adapter.learned.head_weight.grad))
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < np.mean(losses[:5]) - 0.5


def test_per_member_context_loss_is_each_member_with_its_own_context() -> None:
    model = _ensemble(probabilistic=False)
    obs, act, nxt = _system(2, 5, np.array([1.0, -1.0]), seed=1)
    contexts = torch.randn(3, 2, 4)
    total = context_loss(model, obs, act, nxt, contexts)
    with torch.no_grad():
        target = model.delta_norm.normalize(nxt - obs)
        parts = [(model(model.obs_norm.normalize(obs), model.act_norm.normalize(act),
                        contexts[e][:, None].expand(2, 5, 4), member=e) - target).square().mean() for e in range(3)]
    torch.testing.assert_close(total, sum(parts))


def test_encoder_per_member_is_refused_for_grbal() -> None:
    with pytest.raises(ValueError, match="encoder_per_member applies to adapter.kind 'rebal' only"):
        make_adapter(_ensemble(), AdapterConfig(kind="grbal", encoder_per_member=True))
