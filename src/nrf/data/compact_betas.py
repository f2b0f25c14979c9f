"""Compact betas: one session's int16 betas at a subject's ROI voxels only.

The real NSD betas are read by HTTP range requests from each session's HDF5
twin, keeping only the nsdgeneral voxels; this is the local file that holds
them, beside the session's ``.nii.gz`` key with the suffix ``.nsdgeneral.hdf5``.

Keys:
    betas     : (n_trials, n_voxels) int16, NSD's scale (beta x 300)
    voxel_ijk : (n_voxels, 3) int32, (i, j, k) indices into the func grid's
                (X, Y, Z) axes, in C-order of the grid (MindEye2's voxel order)
attrs:
    source_key : the NSD key the voxels were read from
    grid_shape : (X, Y, Z) of the func grid
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5

SUFFIX = ".nsdgeneral.hdf5"


def compact_key(nifti_key: str) -> str:
    """``.../betas_session01.nii.gz`` -> ``.../betas_session01.nsdgeneral.hdf5``."""
    if not nifti_key.endswith(".nii.gz"):
        raise ValueError(f"{nifti_key}: expected a betas .nii.gz key")
    return nifti_key[: -len(".nii.gz")] + SUFFIX


def write_compact_betas(path, betas, voxel_ijk, *, source_key: str, grid_shape) -> None:
    """Write atomically: a crash never leaves a half-written file at ``path``."""
    path = Path(path)
    betas = np.asarray(betas)
    voxel_ijk = np.asarray(voxel_ijk, dtype=np.int32)
    if betas.dtype != np.int16 or betas.ndim != 2 or betas.shape[1] != len(voxel_ijk):
        raise ValueError(
            f"{path}: betas must be (n_trials, {len(voxel_ijk)}) int16, got {betas.shape} {betas.dtype}"
        )
    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "betas", betas)
        add_dataset(f, "voxel_ijk", voxel_ijk)
        f.attrs["source_key"] = source_key
        f.attrs["grid_shape"] = np.asarray(grid_shape, dtype=np.int32)


def read_compact_betas(path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``betas`` (n_trials, n_voxels) int16 and ``voxel_ijk`` (n_voxels, 3)."""
    with open_hdf5(path, what="compact betas file") as f:
        return f["betas"][()], f["voxel_ijk"][()]
