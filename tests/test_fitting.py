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


# --- probabilistic ensembles, bootstrapping, elites ----------------------------------------------------------
def heteroscedastic(n: int, seed: int):
    """x' = x + sin(2 x) + noise, noise std 0.02 for x < 0 and 0.3 for x > 0 (1-D state, unused action)."""
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 1, generator=gen) * 4 - 2
    std = torch.where(obs < 0, 0.02, 0.3)
    nxt = obs + torch.sin(2 * obs) + std * torch.randn(n, 1, generator=gen)
    return obs, torch.zeros(n, 1), nxt


def test_probabilistic_model_learns_larger_variance_where_the_noise_is_larger():
    obs, act, nxt = heteroscedastic(3000, seed=0)
    cfg = ModelConfig(hidden_sizes=[32, 32], probabilistic=True, ensemble_size=2, batch_size=64,
                      learning_rate=3e-3)
    model = DynamicsModel(1, 1, cfg, seed=0)
    result = fit(model, obs, act, nxt, epochs=30, generator=torch.Generator().manual_seed(0))
    x = torch.tensor([[-1.5], [-0.5], [0.5], [1.5]])
    mean, var = model.predict_distribution(x, torch.zeros(4, 1), member="all")  # [E, 4, 1]
    std = var.sqrt()[..., 0]
    assert (std[:, :2] < 0.08).all() and (std[:, 2:] > 0.2).all() and (std[:, 2:] < 0.45).all(), std
    err = (mean - (x + torch.sin(2 * x)))[..., 0].abs()
    assert (err[:, :2] < 0.05).all() and (err[:, 2:] < 0.2).all(), err  # the noisy side is fitted less well
    assert len(result.val_member_mse) == len(result.val_member_nll) == 2
    assert result.val_losses[result.best_epoch] < result.val_losses[0]


class LossSpy:
    """Records the rows of every stacked training minibatch ([E, batch] observation rows)."""

    def __init__(self, model):
        self.model, self.batches, self.loss = model, [], model.loss

    def __call__(self, obs, act, next_obs, context=None, *, stacked=False):
        if stacked:
            self.batches.append(obs[..., 0].clone())
        return self.loss(obs, act, next_obs, context, stacked=stacked)


@pytest.mark.parametrize("bootstrap", [False, True])
def test_bootstrap_gives_members_different_resamples(bootstrap):
    n = 400
    obs = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 4).contiguous()  # row id in every column
    act, nxt = torch.zeros(n, 2), obs + 1.0
    model = DynamicsModel(4, 2, ModelConfig(hidden_sizes=[8], ensemble_size=3, batch_size=50, bootstrap=bootstrap),
                          seed=0)
    spy = model.loss = LossSpy(model)
    fit(model, obs, act, nxt, epochs=2, val_fraction=0.0, generator=torch.Generator().manual_seed(0))
    per_epoch = len(spy.batches) // 2
    for epoch in range(2):
        rows = torch.cat(spy.batches[epoch * per_epoch:(epoch + 1) * per_epoch], dim=1).long()  # [E, n]
        counts = torch.stack([torch.bincount(r, minlength=n) for r in rows])
        if not bootstrap:  # every member sees every row once per epoch
            assert (counts == 1).all()
        else:  # with replacement: ~37 % of rows left out per member, and a different set for each member
            missing = (counts == 0).float().mean(1)
            assert ((missing > 0.3) & (missing < 0.45)).all(), missing
            assert not torch.equal(counts[0], counts[1]) and not torch.equal(counts[1], counts[2])
            if epoch == 0:
                first = counts
            else:  # the resample is drawn once per fit: the same multiset in every epoch
                assert torch.equal(counts, first)


def test_elites_are_the_members_with_the_lowest_held_out_mse():
    obs, act, nxt = double_integrator(600, seed=4)
    cfg = ModelConfig(hidden_sizes=[32], ensemble_size=5, elites=2, batch_size=64, bootstrap=True)
    model = DynamicsModel(4, 2, cfg, seed=0)
    with torch.no_grad():  # two members start far off, so they stay worst after a short fit
        model.layers[-1].bias[[1, 3]] += 5.0
    result = fit(model, obs, act, nxt, epochs=2, val_fraction=0.25, generator=torch.Generator().manual_seed(3))
    _, val_idx = split_indices(600, 0.25, torch.Generator().manual_seed(3))  # the split fit() drew first
    pred = model.predict(obs[val_idx], act[val_idx], member="all")
    mse = (((pred - nxt[val_idx]) / model.delta_norm.std) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(torch.tensor(result.val_member_mse), mse, rtol=1e-4, atol=0)
    expected = sorted(torch.argsort(mse)[:2].tolist())
    assert result.elites == expected == model.elite_members.tolist()
    assert not {1, 3} & set(expected)
    torch.testing.assert_close(model.predict(obs[:5], act[:5]),
                               model.predict(obs[:5], act[:5], member="all")[expected].mean(0))
    with pytest.raises(ValueError, match="val_fraction > 0"):
        fit(model, obs, act, nxt, epochs=1, val_fraction=0.0)
