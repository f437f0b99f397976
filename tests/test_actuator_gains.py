"""adaptation.actuator_gains: per-motor gains estimated online recover a disabled, weakened or reversed
actuator of a linear system from a few windows, and the planner's rollouts use them."""
from __future__ import annotations

import pytest
import torch

from adaptive_mbrl.adaptation import AdapterConfig, make_adapter
from adaptive_mbrl.adaptation.actuator_gains import GAIN_MAX, GAIN_MIN, ActuatorGainAdapter
from adaptive_mbrl.models.dynamics import DynamicsModel, ModelConfig
from adaptive_mbrl.models.fitting import fit
from adaptive_mbrl.models.particles import EnsembleParticleStep

OBS, ACT = 3, 2
A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.95, 0.1], [0.05, 0.0, 0.9]])
B = torch.tensor([[0.5, 0.0], [0.0, 0.4], [0.3, -0.3]])


def _transitions(n: int, gains: tuple[float, float], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` transitions of ``s' = A s + B (g * a)``: motor ``j`` delivers ``gains[j]`` of its command."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    act = torch.rand(n, ACT, generator=g) * 2 - 1
    return obs, act, obs @ A.T + (act * torch.tensor(gains)) @ B.T


@pytest.fixture(scope="module")
def ensemble() -> DynamicsModel:
    """A 3-member probabilistic ensemble with 2 elites, fitted on the intact system (g = 1, 1)."""
    config = ModelConfig(hidden_sizes=[32], learning_rate=3e-3, batch_size=64, ensemble_size=3, probabilistic=True,
                         bootstrap=True, elites=2)
    model = DynamicsModel(OBS, ACT, config, seed=0)
    fit(model, *_transitions(1500, (1.0, 1.0), seed=0), epochs=30, generator=torch.Generator().manual_seed(0))
    return model


def _gains_adapter(model: DynamicsModel, steps: int = 5, learning_rate: float = 0.05) -> ActuatorGainAdapter:
    adapter = make_adapter(model, AdapterConfig(kind="actuator_gains", window=16, steps=steps,
                                                learning_rate=learning_rate))
    assert isinstance(adapter, ActuatorGainAdapter)
    return adapter


def _run(adapter: ActuatorGainAdapter, gains: tuple[float, float], control_steps: int) -> None:
    """Adapt once per control step on the latest 16 transitions of the damaged system, as the controller does."""
    for t in range(control_steps):
        adapter.adapt(*_transitions(16, gains, seed=100 + t))


@pytest.mark.parametrize("damage", [(1.0, 0.0), (0.3, 1.0), (-1.0, 1.0)], ids=["disabled", "weakened", "reversed"])
def test_gains_recover_the_damaged_motor_and_the_model_then_predicts_it(ensemble: DynamicsModel,
                                                                          damage: tuple[float, float]) -> None:
    adapter = _gains_adapter(ensemble)
    _run(adapter, damage, control_steps=60)
    assert torch.allclose(adapter.gains, torch.tensor(damage), atol=0.15), adapter.gains
    # On fresh transitions of the damaged system the adapted prediction beats the intact model's by far.
    obs, act, nxt = _transitions(200, damage, seed=7)
    with torch.no_grad():
        before = (ensemble.predict(obs, act) - nxt).square().mean()
        after = (adapter.predict(obs, act) - nxt).square().mean()
    assert after < 0.2 * before


def test_an_intact_robot_keeps_gains_near_one(ensemble: DynamicsModel) -> None:
    adapter = _gains_adapter(ensemble)
    _run(adapter, (1.0, 1.0), control_steps=60)
    assert torch.allclose(adapter.gains, torch.ones(ACT), atol=0.1)


def test_gains_stay_in_range_and_reset_restores_intact_motors(ensemble: DynamicsModel) -> None:
    adapter = _gains_adapter(ensemble, learning_rate=0.5)
    _run(adapter, (-1.0, 0.0), control_steps=40)  # a large step size pushes against the lower bound
    assert bool(((adapter.gains >= GAIN_MIN) & (adapter.gains <= GAIN_MAX)).all())
    assert not torch.allclose(adapter.gains, torch.ones(ACT))
    adapter.reset()
    assert torch.equal(adapter.gains, torch.ones(ACT))
    obs, act, _ = _transitions(8, (1.0, 1.0), seed=3)
    with torch.no_grad():
        assert torch.equal(adapter.predict(obs, act), ensemble.predict(obs, act))


def test_adapting_leaves_the_model_unchanged_and_works_under_inference_mode(ensemble: DynamicsModel) -> None:
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    adapter = _gains_adapter(ensemble)
    with torch.inference_mode():
        adapter.adapt(*_transitions(16, (1.0, 0.0), seed=1))
    assert adapter.gains[1] < 1.0
    assert all(torch.equal(v, ensemble.state_dict()[k]) for k, v in before.items())


def test_empty_window_or_zero_steps_change_nothing(ensemble: DynamicsModel) -> None:
    adapter = _gains_adapter(ensemble, steps=0)
    adapter.adapt(*_transitions(16, (1.0, 0.0), seed=1))
    assert torch.equal(adapter.gains, torch.ones(ACT))
    adapter = _gains_adapter(ensemble)
    empty = torch.zeros(0, OBS)
    adapter.adapt(empty, torch.zeros(0, ACT), empty)
    assert torch.equal(adapter.gains, torch.ones(ACT))


def test_particle_steps_feed_the_scaled_actions_to_the_members(ensemble: DynamicsModel) -> None:
    adapter = _gains_adapter(ensemble)
    adapter.gains = torch.tensor([1.0, 0.0])
    state, act = torch.randn(1, 4, 2, OBS), torch.rand(1, 4, ACT) * 2 - 1
    members = torch.tensor([0, 1])
    plain = EnsembleParticleStep(ensemble)
    step = adapter.particle_step()
    assert step.num_members == 2  # the elites
    scaled = act * torch.tensor([1.0, 0.0])
    with torch.inference_mode():
        got = step(state, act, members, torch.Generator().manual_seed(0))
        want = plain(state, scaled, members, torch.Generator().manual_seed(0))
    assert torch.equal(got, want)


def test_batch_particle_step_gives_each_environment_its_own_gains(ensemble: DynamicsModel) -> None:
    first, second = _gains_adapter(ensemble), _gains_adapter(ensemble)
    second.gains = torch.tensor([0.0, 1.0])
    state, act = torch.randn(2, 3, 1, OBS), torch.rand(2, 3, ACT) * 2 - 1
    with torch.inference_mode():
        batched = ActuatorGainAdapter.batch_particle_step([first, second])(state, act, None, None)
        one = first.particle_step()(state[:1], act[:1], None, None)
        two = second.particle_step()(state[1:], act[1:], None, None)
    assert torch.allclose(batched, torch.cat((one, two)), atol=1e-6)
    assert not torch.allclose(one, second.particle_step()(state[:1], act[:1], None, None))


def test_a_context_model_is_refused_by_name() -> None:
    model = DynamicsModel(OBS, ACT, ModelConfig(hidden_sizes=[8], context_dim=2))
    with pytest.raises(ValueError, match="actuator_gains.*context_dim"):
        make_adapter(model, AdapterConfig(kind="actuator_gains"))


# --- finetune_steps: dynamic evaluation of the weights on top of the gains ------------------------------

OFFSET = torch.tensor([0.3, -0.2, 0.25])
"""A change no per-motor gain can explain: a constant push on every state (e.g. a slope)."""


def _shifted(n: int, gains: tuple[float, float], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    obs, act, nxt = _transitions(n, gains, seed)
    return obs, act, nxt + OFFSET


def _gains_de_adapter(model: DynamicsModel, finetune_steps: int = 2) -> ActuatorGainAdapter:
    adapter = make_adapter(model, AdapterConfig(kind="actuator_gains", window=16, steps=5, learning_rate=0.05,
                                                finetune_steps=finetune_steps, finetune_learning_rate=3e-3))
    assert isinstance(adapter, ActuatorGainAdapter)
    return adapter


def test_finetuning_fits_what_the_gains_cannot_and_still_finds_the_motor(ensemble: DynamicsModel) -> None:
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    plain, tuned = _gains_adapter(ensemble), _gains_de_adapter(ensemble)
    for t in range(60):
        window = _shifted(16, (1.0, 0.0), seed=100 + t)
        plain.adapt(*window)
        tuned.adapt(*window)
    obs, act, nxt = _shifted(200, (1.0, 0.0), seed=7)
    with torch.no_grad():
        plain_error = (plain.predict(obs, act) - nxt).square().mean()
        tuned_error = (tuned.predict(obs, act) - nxt).square().mean()
    assert tuned_error < 0.5 * plain_error, (tuned_error, plain_error)
    assert tuned.gains[1] < 0.5 and tuned.gains[0] > 0.5  # the disabled motor is still the one found
    assert all(torch.equal(v, ensemble.state_dict()[k]) for k, v in before.items())  # a copy was tuned


def test_finetuned_weights_are_restored_at_reset(ensemble: DynamicsModel) -> None:
    adapter = _gains_de_adapter(ensemble)
    obs, act, _ = _transitions(8, (1.0, 1.0), seed=3)
    with torch.inference_mode():
        for t in range(5):
            adapter.adapt(*_shifted(16, (1.0, 0.0), seed=t))
    with torch.no_grad():
        assert not torch.allclose(adapter.adapted.predict(obs, act), ensemble.predict(obs, act))
        adapter.reset()
        assert torch.equal(adapter.predict(obs, act), ensemble.predict(obs, act))
    assert torch.equal(adapter.gains, torch.ones(ACT))


def test_without_finetune_steps_the_trained_model_itself_predicts(ensemble: DynamicsModel) -> None:
    assert _gains_adapter(ensemble).adapted is ensemble
    assert _gains_de_adapter(ensemble).adapted is not ensemble


def test_lockstep_environments_cannot_share_finetuned_weights(ensemble: DynamicsModel) -> None:
    adapters = [_gains_de_adapter(ensemble), _gains_de_adapter(ensemble)]
    with pytest.raises(ValueError, match="finetune_steps > 0 .*parallel_envs=1"):
        ActuatorGainAdapter.batch_particle_step(adapters)


def test_finetune_steps_belong_to_the_actuator_gains_adapter_only(ensemble: DynamicsModel) -> None:
    with pytest.raises(ValueError, match="adapter.finetune_steps applies to adapter.kind 'actuator_gains' only"):
        make_adapter(ensemble, AdapterConfig(kind="finetune", finetune_steps=1))
