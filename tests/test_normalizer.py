"""Normalizer: statistics, round trip, constant dimensions, persistence."""
import pytest
import torch

from adaptive_mbrl.models import Normalizer


def test_identity_before_fit():
    norm = Normalizer(3)
    x = torch.randn(4, 3)
    assert torch.equal(norm.normalize(x), x)
    assert torch.equal(norm.denormalize(x), x)


def test_fit_statistics_and_round_trip_on_any_leading_shape():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 3, generator=gen) * torch.tensor([0.1, 5.0, 100.0]) + torch.tensor([1.0, -3.0, 40.0])
    norm = Normalizer(3)
    norm.fit(x)
    torch.testing.assert_close(norm.mean, x.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.std, x.std(0, unbiased=False), rtol=1e-5, atol=1e-5)
    z = norm.normalize(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    y = x.reshape(10, 20, 10, 3)
    torch.testing.assert_close(norm.denormalize(norm.normalize(y)), y, rtol=1e-5, atol=1e-4)
    # Fitting pools every leading axis.
    other = Normalizer(3)
    other.fit(y)
    torch.testing.assert_close(other.std, norm.std)


def test_constant_dimension_is_centred_not_blown_up():
    x = torch.randn(100, 2)
    x[:, 1] = 7.0
    norm = Normalizer(2)
    norm.fit(x)
    assert norm.std[1] == 1.0 and norm.mean[1] == 7.0
    shifted = torch.tensor([[0.0, 7.01]])
    assert abs(norm.normalize(shifted)[0, 1].item() - 0.01) < 1e-5
    assert torch.isfinite(norm.normalize(torch.full((1, 2), 1e3))).all()


def test_single_row_fit_keeps_unit_scale():
    norm = Normalizer(2)
    norm.fit(torch.tensor([[1.0, 2.0]]))
    assert torch.equal(norm.std, torch.ones(2))


def test_state_dict_carries_statistics():
    norm = Normalizer(2)
    norm.fit(torch.randn(50, 2) * 3 + 1)
    fresh = Normalizer(2)
    fresh.load_state_dict(norm.state_dict())
    assert set(norm.state_dict()) == {"mean", "std"}
    assert torch.equal(fresh.mean, norm.mean) and torch.equal(fresh.std, norm.std)


def test_bad_input_is_rejected():
    norm = Normalizer(2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        norm.fit(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        norm.fit(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError):
        Normalizer(2, min_std=0.0)
