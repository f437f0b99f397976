"""Online adapters: ``none`` is the model; ``finetune`` fits the window and resets to the prior exactly."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from adaptive_mbrl.adaptation import AdapterConfig, NoAdaptation, make_adapter
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.models.fitting import fit

OBS, ACT = 3, 2
A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.95, 0.1], [0.05, 0.0, 0.9]])
B = torch.tensor([[0.5, 0.0], [0.0, 0.4], [0.3, -0.3]])


def _transitions(n: int, b_scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` transitions of the linear system ``s' = A s + b_scale * B a``."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    act = torch.rand(n, ACT, generator=g) * 2 - 1
    return obs, act, obs @ A.T + b_scale * act @ B.T


@pytest.fixture(scope="module")
def prior() -> DynamicsModel:
    """A small MLP fitted on the nominal system (b_scale = 1)."""
    torch.manual_seed(0)
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[32], learning_rate=3e-3, batch_size=64), seed=0)
    fit(model, *_transitions(1500, 1.0, seed=0), epochs=40, generator=torch.Generator().manual_seed(0))
    return model


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _finetune(model: DynamicsModel, **overrides) -> object:
    config = AdapterConfig(kind="finetune", window=32, steps=25, learning_rate=1e-2, optimizer="adam")
    return make_adapter(model, dataclasses.replace(config, **overrides))


def test_prior_fits_nominal_but_not_the_changed_system(prior: DynamicsModel) -> None:
    with torch.no_grad():
        nominal = prior.loss(*_transitions(200, 1.0, seed=5)).item()
        changed = prior.loss(*_transitions(200, -1.0, seed=5)).item()
    assert nominal < 0.05
    assert changed > 10 * nominal


def test_none_predicts_exactly_like_the_model(prior: DynamicsModel) -> None:
    adapter = make_adapter(prior, AdapterConfig(kind="none"))
    assert isinstance(adapter, NoAdaptation)
    before = _state(prior)
    obs, act, nxt = _transitions(50, -1.0, seed=1)
    adapter.adapt(obs[:16], act[:16], nxt[:16])
    adapter.reset()
    query = torch.randn(4, 7, OBS), torch.rand(4, 7, ACT)
    assert torch.equal(adapter.predict(*query), prior.predict(*query))
    _assert_same_state(_state(prior), before)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_finetune_fits_the_window_and_generalises_to_the_changed_system(prior: DynamicsModel,
                                                                       optimizer: str) -> None:
    before = _state(prior)
    lr = 0.05 if optimizer == "sgd" else 1e-2
    adapter = _finetune(prior, optimizer=optimizer, learning_rate=lr)
    window = _transitions(32, -1.0, seed=2)
    held_out = _transitions(300, -1.0, seed=3)

    def errors() -> tuple[float, float]:
        with torch.no_grad():
            win = adapter.adapted.loss(*window).item()
            pred = adapter.predict(*held_out[:2])
            return win, (pred - held_out[2]).square().mean().item()

    window_before, test_before = errors()
    adapter.adapt(*window)
    window_after, test_after = errors()
    assert window_after < 0.5 * window_before
    assert test_after < 0.7 * test_before
    # The prior model itself is untouched.
    _assert_same_state(_state(prior), before)


def test_reset_restores_the_prior_exactly(prior: DynamicsModel) -> None:
    adapter = _finetune(prior)
    prior_state = _state(prior)
    for seed in range(3):
        adapter.adapt(*_transitions(32, -1.0, seed=10 + seed))
    assert any(not torch.equal(v, prior_state[k]) for k, v in adapter.adapted.state_dict().items())
    adapter.reset()
    _assert_same_state(_state(adapter.adapted), prior_state)
    query = torch.randn(10, OBS), torch.rand(10, ACT)
    assert torch.equal(adapter.predict(*query), prior.predict(*query))
    # After a reset, adaptation repeats exactly (no optimiser state such as Adam moments survives).
    window = _transitions(32, -1.0, seed=20)
    adapter.adapt(*window)
    first = _state(adapter.adapted)
    adapter.reset()
    adapter.adapt(*window)
    _assert_same_state(_state(adapter.adapted), first)


def test_reset_each_step_restarts_from_the_prior(prior: DynamicsModel) -> None:
    window = _transitions(16, -1.0, seed=30)
    other = _transitions(16, -1.0, seed=31)

    fresh = _finetune(prior, reset_each_step=True, steps=3)
    fresh.adapt(*window)
    once = _state(fresh.adapted)
    fresh.adapt(*other)
    fresh.adapt(*window)  # restarts from the prior: the same as adapting once on this window
    _assert_same_state(_state(fresh.adapted), once)

    accumulating = _finetune(prior, reset_each_step=False, steps=3)
    accumulating.adapt(*window)
    _assert_same_state(_state(accumulating.adapted), once)
    accumulating.adapt(*window)  # keeps going from the adapted weights
    twice = _state(accumulating.adapted)
    assert any(not torch.equal(twice[k], once[k]) for k in once)
    with torch.no_grad():
        loss_twice = accumulating.adapted.loss(*window).item()
        fresh.adapt(*window)
        loss_once = fresh.adapted.loss(*window).item()
    assert loss_twice < loss_once


def test_zero_steps_changes_nothing(prior: DynamicsModel) -> None:
    adapter = _finetune(prior, steps=0)
    adapter.adapt(*_transitions(16, -1.0, seed=40))
    _assert_same_state(_state(adapter.adapted), _state(prior))


def test_adapt_works_when_called_under_inference_mode(prior: DynamicsModel) -> None:
    """A caller may hold its transitions as inference tensors (e.g. built while planning)."""
    adapter = _finetune(prior, steps=5)
    with torch.inference_mode():
        window = _transitions(16, -1.0, seed=50)
        adapter.adapt(*window)
    with torch.no_grad():
        assert adapter.adapted.loss(*_transitions(16, -1.0, seed=50)).item() < prior.loss(
            *_transitions(16, -1.0, seed=50)).item()


def test_context_gate_on_a_non_recurrent_adapter_is_refused_by_name(prior: DynamicsModel) -> None:
    with pytest.raises(ValueError, match="context_gate.*'rebal' only.*'finetune'"):
        make_adapter(prior, AdapterConfig(kind="finetune", context_gate=True))


# --- probabilistic ensembles (PETS) ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ensemble_prior() -> DynamicsModel:
    """A 3-member probabilistic ensemble with 2 elites, fitted on the nominal system."""
    config = ModelConfig(hidden_sizes=[32], learning_rate=3e-3, batch_size=64, ensemble_size=3, probabilistic=True,
                         bootstrap=True, elites=2)
    model = DynamicsModel(OBS, ACT, config, seed=0)
    fit(model, *_transitions(600, 1.0, seed=0), epochs=10, generator=torch.Generator().manual_seed(0))
    return model


def test_finetune_steps_every_member_on_the_ensembles_own_nll_in_one_batched_call(
        ensemble_prior: DynamicsModel) -> None:
    import copy

    adapter = _finetune(ensemble_prior, steps=1, learning_rate=1e-2)
    rows: list[tuple[int, ...]] = []
    adapter.adapted.layers[0].register_forward_hook(lambda layer, inputs, out: rows.append(tuple(out.shape)))
    window = _transitions(16, -1.0, seed=60)
    adapter.adapt(*window)
    assert rows == [(3, 16, 32)]  # one forward over all members: [E, m, hidden]
    # The same as one Adam step on the model's own loss (Gaussian NLL + log-variance bound penalty) ...
    reference = copy.deepcopy(ensemble_prior)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    reference.loss(*window).backward()
    optimizer.step()
    _assert_same_state(_state(adapter.adapted), _state(reference))
    # ... which moves every member and the learned log-variance bounds; the elites stay the trained ones.
    prior = _state(ensemble_prior)
    for e in range(3):
        assert not torch.equal(adapter.adapted.layers[0].weight[e], prior["layers.0.weight"][e])
    assert not torch.equal(adapter.adapted.max_logvar, prior["max_logvar"])
    assert torch.equal(adapter.adapted.elite_members, prior["elite_members"])


def test_particle_steps_roll_out_the_adapted_model(ensemble_prior: DynamicsModel) -> None:
    none, tuned = make_adapter(ensemble_prior, AdapterConfig(kind="none")), _finetune(ensemble_prior, steps=5)
    assert none.particle_step().model is ensemble_prior and tuned.particle_step().model is tuned.adapted
    assert none.particle_step().num_members == 2  # the elites
    state, act = torch.randn(1, 4, 2, OBS), torch.rand(1, 4, ACT) * 2 - 1
    members = torch.tensor([0, 1])

    def step(adapter) -> torch.Tensor:
        with torch.inference_mode():
            return adapter.particle_step()(state, act, members, torch.Generator().manual_seed(0))

    assert torch.equal(step(tuned), step(none))  # same prior, same noise
    tuned.adapt(*_transitions(32, -1.0, seed=61))
    assert not torch.allclose(step(tuned), step(none))
    tuned.reset()
    assert torch.equal(step(tuned), step(none))
