"""The batched voxelwise ensemble against one scikit-learn LinearRegression per voxel."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from nrf.ensemble import apply_ensemble, fit_ensemble


def _per_voxel_sklearn(base_preds, responses):
    k, _, v = base_preds.shape
    weights, bias = np.empty((v, k)), np.empty(v)
    for j in range(v):
        fit = LinearRegression().fit(base_preds[:, :, j].T, responses[:, j])
        weights[j], bias[j] = fit.coef_, fit.intercept_
    return weights, bias


def test_matches_sklearn_per_voxel(rng):
    k, n, v = 3, 120, 300
    base = rng.normal(size=(k, n, v)).astype(np.float32)
    base[1] += 0.6 * base[0]  # correlated base models, as real encoders are
    true_w = rng.uniform(-0.5, 1.0, size=(v, k))
    responses = (np.einsum("knv,vk->nv", base, true_w) + 0.3 + rng.normal(scale=0.5, size=(n, v))).astype(np.float32)

    weights, bias = fit_ensemble(base, responses)
    ref_w, ref_b = _per_voxel_sklearn(base.astype(np.float64), responses.astype(np.float64))
    assert weights.shape == (v, k) and bias.shape == (v,)
    np.testing.assert_allclose(weights, ref_w, atol=1e-8)
    np.testing.assert_allclose(bias, ref_b, atol=1e-8)

    pred = apply_ensemble(base, weights, bias)
    ref_pred = np.stack([LinearRegression().fit(base[:, :, j].T, responses[:, j]).predict(base[:, :, j].T)
                         for j in range(5)], axis=1)
    assert pred.shape == (n, v) and pred.dtype == np.float32
    np.testing.assert_allclose(pred[:, :5], ref_pred, atol=1e-4)


def test_constant_base_prediction_gets_minimum_norm_solution_like_sklearn(rng):
    base = rng.normal(size=(3, 40, 6))
    base[2, :, 4] = 1.5  # a base model that predicts one value at voxel 4
    responses = rng.normal(size=(40, 6))
    weights, bias = fit_ensemble(base, responses)
    ref_w, ref_b = _per_voxel_sklearn(base, responses)
    assert weights[4, 2] == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(weights, ref_w, atol=1e-8)
    np.testing.assert_allclose(bias, ref_b, atol=1e-8)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"\(K, N, V\)"):
        fit_ensemble(np.zeros((3, 10, 5)), np.zeros((10, 4)))


def test_shrunk_ensemble_tends_to_the_average_and_to_least_squares(rng):
    from nrf.ensemble import fit_ridge_ensemble, fit_shrunk_ensemble

    preds = rng.normal(size=(3, 40, 25))
    y = 0.5 * preds[0] + 0.3 * preds[1] + 0.1 * rng.normal(size=(40, 25))
    w_ls, b_ls = fit_ensemble(preds, y)
    w, b = fit_ridge_ensemble(preds, y, 1e-9)
    np.testing.assert_allclose(w, w_ls, atol=1e-6)  # no penalty: least squares
    w, _ = fit_ridge_ensemble(preds, y, 1e9)
    np.testing.assert_allclose(w, 1 / 3, atol=1e-5)  # infinite penalty: the simple average
    w, _, lam = fit_shrunk_ensemble(preds, y, seed=0)
    assert lam < 1.0  # 40 clean images: cross-validation keeps the fitted weights
    np.testing.assert_allclose(w.mean(axis=0), [0.5, 0.3, 0.0], atol=0.05)
