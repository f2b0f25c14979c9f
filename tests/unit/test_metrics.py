"""Per-voxel scores against scipy's pearsonr and a direct MSE."""

import numpy as np
import pytest
import scipy.stats

from nrf.metrics import mse_per_voxel, pearson_per_voxel, summarise


def test_pearson_matches_scipy(rng):
    pred = rng.normal(size=(13, 7)).astype(np.float32)
    true = (0.5 * pred + rng.normal(size=(13, 7))).astype(np.float32)
    r = pearson_per_voxel(pred, true)
    ref = [scipy.stats.pearsonr(pred[:, v].astype(np.float64), true[:, v].astype(np.float64))[0] for v in range(7)]
    assert r.shape == (7,) and r.dtype == np.float64
    np.testing.assert_allclose(r, ref, atol=1e-6)


def test_mse_matches_direct(rng):
    pred = rng.normal(size=(9, 5)).astype(np.float32)
    true = rng.normal(size=(9, 5)).astype(np.float32)
    ref = [np.mean((pred[:, v].astype(np.float64) - true[:, v]) ** 2) for v in range(5)]
    np.testing.assert_allclose(mse_per_voxel(pred, true), ref, atol=1e-6)


def test_constant_columns_give_nan(rng):
    pred = rng.normal(size=(6, 4)).astype(np.float32)
    true = rng.normal(size=(6, 4)).astype(np.float32)
    pred[:, 1] = 0.3
    true[:, 2] = -7.0
    r = pearson_per_voxel(pred, true)
    assert np.isnan(r[1]) and np.isnan(r[2])
    assert np.isfinite(r[[0, 3]]).all()
    s = summarise(r, mse_per_voxel(pred, true))
    assert s["n_undefined_r"] == 2
    np.testing.assert_allclose(s["mean_r"], (r[0] + r[3]) / 4)  # undefined r counted as 0


def test_summarise(rng):
    r = np.array([0.1, 0.5, 0.2])
    s = summarise(r, np.array([1.0, 2.0, 3.0]))
    assert s["median_r"] == pytest.approx(0.2) and s["mean_r"] == pytest.approx(0.8 / 3)
    assert s["mean_mse"] == pytest.approx(2.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        pearson_per_voxel(np.zeros((3, 2)), np.zeros((3, 3)))
