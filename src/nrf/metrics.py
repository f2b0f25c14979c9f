"""Voxel-level scores of predicted responses, vectorised over voxels.

Every function takes ``(n_images, n_voxels)`` arrays (predicted and measured
responses for the same images in the same order) and returns one number per
voxel. Sums are accumulated in float64 whatever the input dtype.

A voxel whose predicted or measured responses are constant across images has
no defined Pearson correlation: :func:`pearson_per_voxel` returns ``nan`` for
it rather than a number that looks like a score. :func:`summarise` counts such
voxels as r = 0 (a prediction that does not vary carries no information about
the response), as the authors' scoring does.
"""

from __future__ import annotations

import numpy as np


def _check_pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    true = np.asarray(true)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(
            f"predictions {pred.shape} and responses {true.shape} must both be "
            "(n_images, n_voxels) with the same shape"
        )
    if pred.shape[0] < 2:
        raise ValueError(f"need at least 2 images to score voxels, got {pred.shape[0]}")
    return pred, true


def _is_constant(centred_ss: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Columns whose centred sum of squares is rounding noise: (n_voxels,) bool."""
    size = np.abs(x).max(axis=0).astype(np.float64)
    return np.sqrt(centred_ss) <= 1e-12 * np.sqrt(x.shape[0]) * size


def pearson_per_voxel(pred, true) -> np.ndarray:
    """Pearson r between predicted and measured responses, one per voxel.

    Parameters
    ----------
    pred, true : (n_images, n_voxels) array

    Returns
    -------
    r : (n_voxels,) float64; ``nan`` where either column is constant.
    """
    pred, true = _check_pair(pred, true)
    p = pred.astype(np.float64)
    t = true.astype(np.float64)
    p = p - p.mean(axis=0)
    t = t - t.mean(axis=0)
    ss_p = np.einsum("iv,iv->v", p, p)
    ss_t = np.einsum("iv,iv->v", t, t)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("iv,iv->v", p, t) / np.sqrt(ss_p * ss_t)
    # constant columns: after centring only float64 rounding (~1e-16 of the
    # values) is left, far below any real variation of float32 data
    r[_is_constant(ss_p, pred) | _is_constant(ss_t, true)] = np.nan
    return np.clip(r, -1.0, 1.0)


def mse_per_voxel(pred, true) -> np.ndarray:
    """Mean squared error across images, one per voxel: (n_voxels,) float64."""
    pred, true = _check_pair(pred, true)
    d = pred.astype(np.float64) - true.astype(np.float64)
    return np.einsum("iv,iv->v", d, d) / d.shape[0]


def summarise(r, mse) -> dict[str, float]:
    """Summary of per-voxel scores: median r, mean r, mean MSE, and the count of
    voxels whose r is undefined (``nan``, counted as r = 0 in the medians/means).
    """
    r = np.asarray(r, dtype=np.float64)
    mse = np.asarray(mse, dtype=np.float64)
    n_undefined = int(np.isnan(r).sum())
    r0 = np.nan_to_num(r, nan=0.0)
    return {
        "median_r": float(np.median(r0)),
        "mean_r": float(np.mean(r0)),
        "mean_mse": float(np.mean(mse)),
        "n_voxels": int(r.size),
        "n_undefined_r": n_undefined,
    }
