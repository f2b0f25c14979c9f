"""The voxelwise least-squares ensemble of finetuned bases (paper eq. 1–2).

For each voxel v, the measured response over N images is regressed on the K
finetuned bases' predictions plus a bias: y_v ≈ b_v + Σ_k w_{v,k} p_{k,v}.
All voxels are solved at once as one batched (K+1) x (K+1) system, instead of
one scikit-learn model per voxel as in the authors' code.

:func:`fit_shrunk_ensemble` is our addition: the same regression with a
ridge penalty pulling the weights toward the simple average (w = 1/K), its
strength chosen by cross-validation on the training images only, so the
weights cannot overfit N = 20 images.
"""

from __future__ import annotations

import numpy as np


def _design(base_preds: np.ndarray) -> np.ndarray:
    """(K, N, V) predictions -> (V, N, K+1) design matrices with a bias column."""
    k, n, v = base_preds.shape
    x = np.ones((v, n, k + 1), dtype=np.float64)
    x[:, :, :k] = np.transpose(base_preds, (2, 1, 0))
    return x


def _check(base_preds, responses) -> tuple[np.ndarray, np.ndarray]:
    base_preds = np.asarray(base_preds, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    if base_preds.ndim != 3 or responses.shape != base_preds.shape[1:]:
        raise ValueError(
            f"base_preds must be (K, N, V) and responses (N, V); got {base_preds.shape} and {responses.shape}"
        )
    return base_preds, responses


def fit_ensemble(base_preds, responses, *, ridge: float = 0.0, prior=None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares weights and bias per voxel.

    Parameters
    ----------
    base_preds : (K, N, V) the K bases' predictions on the N training images
    responses : (N, V) measured responses
    ridge : penalty λ on ||w - prior||² (0 = ordinary least squares, the paper)
    prior : (K,) weights the penalty pulls toward (default 1/K each)

    Returns
    -------
    weights : (V, K) float64; bias : (V,) float64

    With fewer images than parameters (N < K + 1) the minimum-norm solution
    is returned (numpy's lstsq), as scikit-learn's LinearRegression does.
    """
    base_preds, responses = _check(base_preds, responses)
    k = base_preds.shape[0]
    x = _design(base_preds)  # (V, N, K+1)
    y = responses.T[:, :, None]  # (V, N, 1)
    if ridge == 0.0:
        if base_preds.shape[1] >= k + 1:
            xtx = np.einsum("vni,vnj->vij", x, x)
            xty = np.einsum("vni,vnj->vij", x, y)
            try:
                beta = np.linalg.solve(xtx, xty)[..., 0]
                return beta[:, :k], beta[:, k]
            except np.linalg.LinAlgError:
                pass  # a singular voxel: fall back to the minimum-norm solve below
        beta = np.stack([np.linalg.lstsq(x[i], y[i, :, 0], rcond=None)[0] for i in range(len(x))])
        return beta[:, :k], beta[:, k]
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    penalty = np.zeros((k + 1, k + 1))
    penalty[:k, :k] = ridge * np.eye(k)
    target = np.zeros(k + 1)
    target[:k] = ridge * prior
    xtx = np.einsum("vni,vnj->vij", x, x) + penalty
    xty = np.einsum("vni,vn->vi", x, y[..., 0]) + target
    beta = np.linalg.solve(xtx, xty[..., None])[..., 0]
    return beta[:, :k], beta[:, k]


def apply_ensemble(base_preds, weights, bias) -> np.ndarray:
    """(K, M, V) predictions -> (M, V) float32 ensemble prediction."""
    base_preds = np.asarray(base_preds, dtype=np.float64)
    out = np.einsum("kmv,vk->mv", base_preds, np.asarray(weights)) + np.asarray(bias)[None, :]
    return out.astype(np.float32)


def fit_shrunk_ensemble(
    base_preds, responses, *, lambdas=(0.0, 0.1, 1.0, 10.0, 100.0, 1e4), folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ensemble weights shrunk toward the simple average, strength by cross-validation.

    Each λ is scored by ``folds``-fold cross-validation over the N training
    images (weights fitted on the other folds, squared error on the held-out
    fold, summed over voxels); the best λ is refitted on all N images.
    Returns (weights (V, K), bias (V,), the chosen λ).
    """
    base_preds, responses = _check(base_preds, responses)
    n = base_preds.shape[1]
    folds = max(2, min(int(folds), n))
    order = np.random.default_rng(seed).permutation(n)
    errors = np.zeros(len(lambdas))
    for fold in np.array_split(order, folds):
        keep = np.setdiff1d(order, fold)
        for i, lam in enumerate(lambdas):
            # an un-penalised fit on a handful of images is ill-posed: floor λ
            w, b = fit_ensemble(base_preds[:, keep], responses[keep], ridge=max(float(lam), 1e-8))
            pred = apply_ensemble(base_preds[:, fold], w, b)
            errors[i] += float(np.sum((pred - responses[fold]) ** 2))
    best = float(lambdas[int(np.argmin(errors))])
    w, b = fit_ensemble(base_preds, responses, ridge=max(best, 1e-8))
    return w, b, best
