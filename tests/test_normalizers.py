import numpy as np
import pytest
import torch

from dydiff.data.normalizers import (
    MinMaxNormalizer,
    StandardNormalizer,
    fit_normalizer,
    normalizer_from_state,
)


@pytest.mark.parametrize("kind", ["minmax", "zscore"])
def test_round_trip_numpy_and_torch(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 5.0, size=(1000, 6))
    x[:, 2] = 7.0  # a constant dimension
    norm = fit_normalizer(kind, x)
    z = norm.normalize(x)
    np.testing.assert_allclose(norm.denormalize(z), x, rtol=0, atol=1e-12)
    xt = torch.as_tensor(x, dtype=torch.float32)
    zt = norm.normalize(xt)
    assert zt.dtype == torch.float32
    torch.testing.assert_close(norm.denormalize(zt), xt, rtol=1e-6, atol=1e-5)
    again = normalizer_from_state(norm.state_dict())
    np.testing.assert_array_equal(again.normalize(x), z)


def test_minmax_maps_range_to_unit_interval():
    x = np.array([[0.0, -2.0], [4.0, 2.0], [1.0, 0.0]])
    z = MinMaxNormalizer.fit(x).normalize(x)
    np.testing.assert_allclose(z, [[-1, -1], [1, 1], [-0.5, 0]])


def test_zscore_uses_eps():
    x = np.array([[1.0], [3.0]])
    z = StandardNormalizer.fit(x, eps=1e-3).normalize(x)
    np.testing.assert_allclose(z, [[-1 / 1.001], [1 / 1.001]])


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown normaliser"):
        fit_normalizer("robust", np.zeros((2, 2)))
