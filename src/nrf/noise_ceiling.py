"""Noise ceilings per voxel, and accuracy as a percentage of the ceiling.

NSD's ceiling (Allen et al. 2022) for responses averaged over ``n`` repeats:
``NC = 100 * ncsnr² / (ncsnr² + 1/n)``, the percentage of the averaged
response's variance that is signal. On the simulator the signal is known, so
the ceiling is exact: ``NC = 100 * r(noiseless, measured)²`` over the test
images, the variance a perfect model could explain.

A model's noise-ceiling-normalised accuracy is ``100 * r|r| / (NC / 100)``:
its explained variance (signed, so anti-correlated voxels count against it)
as a percentage of the explainable. A prediction equal to the noiseless
responses scores exactly 100 %. Voxels with NC below ``min_nc`` percent have
no defined normalised accuracy (nan).
"""

from __future__ import annotations

import numpy as np

from nrf.metrics import pearson_per_voxel

#: repeats per image averaged in NSD's test responses
NSD_REPEATS = 3


def nsd_noise_ceiling(ncsnr, n_repeats: int = NSD_REPEATS) -> np.ndarray:
    """NSD's noise ceiling (percent) for ``n_repeats`` averaged trials: (n_voxels,) float64."""
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    snr2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    return 100.0 * snr2 / (snr2 + 1.0 / n_repeats)


def true_noise_ceiling(noiseless, measured) -> np.ndarray:
    """Exact ceiling (percent) from the noiseless responses: 100 r², (n_voxels,).

    noiseless, measured : (n_test_images, n_voxels), rows the same images.
    A voxel whose noiseless response is constant has ceiling 0.
    """
    r = np.nan_to_num(pearson_per_voxel(noiseless, measured), nan=0.0)
    return 100.0 * r**2


def normalised_accuracy(r, noise_ceiling, *, min_nc: float = 1e-6) -> np.ndarray:
    """100 r|r| / (NC/100) per voxel (percent of the ceiling); nan where NC < min_nc.
    An undefined r (nan) counts as 0."""
    r = np.nan_to_num(np.asarray(r, dtype=np.float64), nan=0.0)
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    if r.shape != nc.shape:
        raise ValueError(f"r {r.shape} and noise ceiling {nc.shape} differ")
    out = np.full_like(r, np.nan)
    ok = nc >= min_nc
    out[ok] = 100.0 * r[ok] * np.abs(r[ok]) / (nc[ok] / 100.0)
    return out


def align_noiseless(noiseless_ids, noiseless_ijk, test_ids, voxel_ijk, *, source: str = "noiseless file"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a noiseless file matching a prepared subject's test
    images and voxels: (row index (n_test,), column index (n_voxels,)).
    Raises naming ``source`` if any image or voxel is missing."""
    row_of = {int(i): r for r, i in enumerate(np.asarray(noiseless_ids))}
    missing = [int(i) for i in test_ids if int(i) not in row_of]
    if missing:
        raise ValueError(f"{source}: lacks {len(missing)} test images, e.g. {missing[:5]}")
    col_of = {tuple(int(v) for v in ijk): c for c, ijk in enumerate(np.asarray(noiseless_ijk))}
    cols = [col_of.get(tuple(int(v) for v in ijk)) for ijk in np.asarray(voxel_ijk)]
    if any(c is None for c in cols):
        raise ValueError(f"{source}: lacks {sum(c is None for c in cols)} of the prepared voxels (by voxel_ijk)")
    return np.array([row_of[int(i)] for i in test_ids]), np.array(cols)
