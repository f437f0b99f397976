"""fit(): the model learns known dynamics; split, early stopping and seeding behave."""
import pytest
import torch

from adaptive_mbrl.models import DynamicsModel, ModelConfig, fit
from adaptive_mbrl.models.fitting import split_indices

DT = 0.1


@pytest.fixture(autouse=True)
def one_thread():
    """Small-batch training is overhead-bound: on the shared 2-core CPU two threads were >10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def double_integrator(n: int, seed: int):
    """Two independent double integrators: state [p1, p2, v1, v2] (m, m/s), action = acceleration."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=gen) * torch.tensor([1.0, 2.0, 0.5, 1.0])
    act = torch.rand(n, 2, generator=gen) * 2 - 1
    pos, vel = obs[:, :2], obs[:, 2:]
    nxt = torch.cat((pos + DT * vel + 0.5 * DT * DT * act, vel + DT * act), -1)
    return obs, act, nxt


def test_learns_double_integrator_to_low_error():
    obs, act, nxt = double_integrator(3000, seed=0)
    model = DynamicsModel(4, 2, ModelConfig(hidden_sizes=[64, 64]), seed=0)
    result = fit(model, obs, act, nxt, epochs=25, generator=torch.Generator().manual_seed(0))
    test_obs, test_act, test_next = double_integrator(500, seed=1)
    err = model.predict(test_obs, test_act) - test_next
    step = test_next - test_obs
    rms = lambda x: x.pow(2).mean().sqrt().item()
    assert rms(err) < 0.05 * rms(step), (rms(err), rms(step))
    assert err.abs().max().item() < 0.3 * rms(step)
    assert result.val_losses[result.best_epoch] < 0.01 * result.train_losses[0]
    assert not model.training


def test_ensemble_fit_trains_every_member_and_seed_reproduces():
    obs, act, nxt = double_integrator(600, seed=2)
    cfg = ModelConfig(hidden_sizes=[32], ensemble_size=3, batch_size=64)
    models = [DynamicsModel(4, 2, cfg, seed=0) for _ in range(2)]
    for m in models:
        fit(m, obs, act, nxt, epochs=4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(models[0].layers[0].weight, models[1].layers[0].weight)
    fresh = DynamicsModel(4, 2, cfg, seed=0)
    fresh.fit_normalizers(obs, act, nxt)
    for e in range(3):  # every member moved and improved
        assert not torch.allclose(models[0].layers[0].weight[e], fresh.layers[0].weight[e])
    per_member = lambda m: ((m.predict(obs, act, member="all") - nxt) ** 2).mean(dim=(1, 2))
    assert (per_member(models[0]) < per_member(fresh)).all()


def test_early_stopping_keeps_best_epoch():
    gen = torch.Generator().manual_seed(0)
    obs, act = torch.randn(60, 4, generator=gen), torch.randn(60, 2, generator=gen)
    nxt = obs + torch.randn(60, 4, generator=gen)  # pure noise: a big net overfits quickly
    model = DynamicsModel(4, 2, ModelConfig(hidden_sizes=[256, 256], batch_size=16, learning_rate=3e-3), seed=0)
    result = fit(model, obs, act, nxt, epochs=200, val_fraction=0.3, patience=3, generator=gen)
    assert result.stopped_early and len(result.val_losses) < 200
    assert len(result.val_losses) == result.best_epoch + 1 + 3
    _, val_idx = split_indices(60, 0.3, torch.Generator().manual_seed(0))
    assert len(val_idx) == 18


def test_without_normaliser_refit_statistics_stay():
    obs, act, nxt = double_integrator(200, seed=3)
    model = DynamicsModel(4, 2, ModelConfig(hidden_sizes=[16]), seed=0)
    before = model.obs_norm.mean.clone()
    fit(model, obs, act, nxt, epochs=1, refit_normalizers=False, val_fraction=0.0,
        generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.obs_norm.mean, before)
    fit(model, obs, act, nxt, epochs=1, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(model.obs_norm.mean, before)


# Pinned before probabilistic ensembles, bootstrapping and elites were added: for a deterministic model
# (probabilistic false, bootstrap false, elites 0) fit() must consume the generator and train exactly as before.
PINNED_FIT = {
    1: ([0.44279101490974426, 0.44207096099853516, 0.4415094554424286],
        [[1.836777687072754, 0.4891665279865265, -1.6982769966125488, -1.6829335689544678],
         [2.0117015838623047, -0.29506993293762207, -0.11044864356517792, -1.42061185836792]]),
    3: ([1.5660264492034912, 1.558668851852417, 1.5525202751159668],
        [[1.8398431539535522, 0.5320615172386169, -1.6961227655410767, -1.6843185424804688],
         [2.021188735961914, -0.2590588629245758, -0.11826836317777634, -1.4180787801742554]]),
}


@pytest.mark.parametrize("ensemble", sorted(PINNED_FIT))
def test_deterministic_fit_reproduces_pinned_losses_and_predictions(ensemble):
    gen = torch.Generator().manual_seed(5)
    obs, act = torch.randn(64, 4, generator=gen), torch.rand(64, 2, generator=gen) * 2 - 1
    nxt = obs + 0.1 * torch.randn(64, 4, generator=gen)
    model = DynamicsModel(4, 2, ModelConfig(hidden_sizes=[16, 16], ensemble_size=ensemble, batch_size=16), seed=0)
    result = fit(model, obs, act, nxt, epochs=3, generator=torch.Generator().manual_seed(0))
    losses, predictions = PINNED_FIT[ensemble]
    torch.testing.assert_close(torch.tensor(result.val_losses), torch.tensor(losses), rtol=0.0, atol=1e-6)
    torch.testing.assert_close(model.predict(obs[:2], act[:2]), torch.tensor(predictions), rtol=0.0, atol=1e-6)
