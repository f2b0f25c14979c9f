"""Voxelwise least-squares ensemble of K base encoders (paper eq. 1-2).

For every voxel v the measured responses over N images are regressed on the
K base models' predictions plus a bias,

    y[:, v] ~ sum_k w[v, k] * P[k, :, v] + b[v],

by ordinary least squares, independently per voxel. The authors fit one
scikit-learn ``LinearRegression`` per voxel; here all voxels are solved at
once: centre predictions and responses per voxel (as LinearRegression does),
form the K x K normal equations of every voxel with one einsum and solve the
whole stack with one batched pseudo-inverse (the minimum-norm solution, as
LinearRegression's lstsq gives, also where a base prediction is constant).

:func:`fit_shrunk_ensemble` is our addition: the same regression with a ridge
penalty pulling the weights toward the simple average (w = 1/K), its strength
chosen by cross-validation on the training images only, so the weights cannot
overfit N = 20 images.
"""

from __future__ import annotations

import numpy as np


def fit_ensemble(base_preds: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares weights of K base predictions, one regression per voxel.

    Parameters
    ----------
    base_preds : (K, N, V) predictions of K base models for N images at V voxels
    responses  : (N, V) measured responses

    Returns
    -------
    weights : (V, K) float64
    bias    : (V,) float64
    """
    base_preds = np.asarray(base_preds, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    if base_preds.ndim != 3 or responses.ndim != 2 or base_preds.shape[1:] != responses.shape:
        raise ValueError(
            f"base_preds must be (K, N, V) and responses (N, V) with the same N, V; "
            f"got {base_preds.shape} and {responses.shape}"
        )
    if base_preds.shape[1] < 2:
        raise ValueError(f"need at least 2 images to fit a bias and weights, got N={base_preds.shape[1]}")
    x_mean = base_preds.mean(axis=1)  # (K, V)
    y_mean = responses.mean(axis=0)  # (V,)
    xc = base_preds - x_mean[:, None, :]
    yc = responses - y_mean
    gram = np.einsum("knv,jnv->vkj", xc, xc)  # (V, K, K)
    cross = np.einsum("knv,nv->vk", xc, yc)  # (V, K)
    # Relative cutoff like lstsq's: drops directions a voxel's data cannot
    # determine (constant or collinear base predictions).
    weights = np.einsum("vkj,vj->vk", np.linalg.pinv(gram, rcond=1e-12, hermitian=True), cross)
    bias = y_mean - np.einsum("vk,kv->v", weights, x_mean)
    return weights, bias


def apply_ensemble(base_preds: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Ensemble prediction (N, V) from base predictions (K, N, V), weights
    (V, K) and bias (V,), float32."""
    base_preds = np.asarray(base_preds)
    if base_preds.ndim != 3 or weights.shape != (base_preds.shape[2], base_preds.shape[0]):
        raise ValueError(
            f"weights {weights.shape} must be (V, K) for base_preds (K, N, V) {base_preds.shape}"
        )
    out = np.einsum("knv,vk->nv", base_preds, weights) + bias
    return out.astype(np.float32)


def fit_ridge_ensemble(base_preds, responses, ridge: float, prior=None) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias minimising ||y - b - P w||² + ridge ||w - prior||² per voxel.

    prior : (K,) the weights the penalty pulls toward (default 1/K each, the
    simple average); ridge > 0. Shapes as :func:`fit_ensemble`.
    """
    base_preds = np.asarray(base_preds, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    k = base_preds.shape[0]
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    x_mean, y_mean = base_preds.mean(axis=1), responses.mean(axis=0)
    xc, yc = base_preds - x_mean[:, None, :], responses - y_mean
    gram = np.einsum("knv,jnv->vkj", xc, xc) + ridge * np.eye(k)
    cross = np.einsum("knv,nv->vk", xc, yc) + ridge * prior
    weights = np.linalg.solve(gram, cross[..., None])[..., 0]
    bias = y_mean - np.einsum("vk,kv->v", weights, x_mean)
    return weights, bias


def fit_shrunk_ensemble(
    base_preds, responses, *, lambdas=(1e-3, 0.1, 1.0, 10.0, 100.0, 1e4), folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ensemble weights shrunk toward the simple average, the strength chosen by
    cross-validation over the N training images (weights fitted on the other
    folds, squared error on the held-out fold, summed over voxels); the best λ
    is refitted on all N images. Returns (weights (V, K), bias (V,), λ)."""
    base_preds = np.asarray(base_preds, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    n = base_preds.shape[1]
    folds = max(2, min(int(folds), n))
    order = np.random.default_rng(seed).permutation(n)
    errors = np.zeros(len(lambdas))
    for fold in np.array_split(order, folds):
        keep = np.setdiff1d(order, fold)
        for i, lam in enumerate(lambdas):
            w, b = fit_ridge_ensemble(base_preds[:, keep], responses[keep], lam)
            errors[i] += float(np.sum((apply_ensemble(base_preds[:, fold], w, b) - responses[fold]) ** 2))
    best = float(lambdas[int(np.argmin(errors))])
    w, b = fit_ridge_ensemble(base_preds, responses, best)
    return w, b, best
