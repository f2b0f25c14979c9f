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
