"""Compact betas: one session's int16 betas at one set of a subject's voxels only.

The real NSD betas are read by HTTP range requests from each session's HDF5
twin, keeping only the voxels a run needs; this is the local file that holds
them, beside the session's ``.nii.gz`` key with the voxel set's suffix:

    ``.nsdgeneral.hdf5`` : brainmask > 0 & nsdgeneral > 0, every subject (every model)
    ``.probe_rois.hdf5`` : Figure 4's ROI voxels outside nsdgeneral, the probe's
                           target only (nrf.data.roi_voxels)

Two files rather than one union, so that the nsdgeneral files every model
depends on never change with Figure 4's settings; a file holding other voxels
than its set selects is refused by its reader, naming it (nrf.data.nsd_tree.session_betas).

Keys:
    betas     : (n_trials, n_voxels) int16, NSD's scale (beta x 300)
    voxel_ijk : (n_voxels, 3) int32, (i, j, k) indices into the func grid's
                (X, Y, Z) axes, in C-order of the grid (MindEye2's voxel order)
attrs:
    source_key : the NSD key the voxels were read from
    grid_shape : (X, Y, Z) of the func grid
    voxel_set  : which set the file holds (a key of VOXEL_SETS)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5

#: the voxel sets a compact file can hold, and what selects their voxels
VOXEL_SETS = {
    "nsdgeneral": "brainmask > 0 & nsdgeneral > 0",
    "probe_rois": "brainmask > 0 & nsdgeneral <= 0 & a label of probes.rois",
}


def compact_key(nifti_key: str, voxel_set: str = "nsdgeneral") -> str:
    """``.../betas_session01.nii.gz`` -> ``.../betas_session01.{voxel_set}.hdf5``."""
    if not nifti_key.endswith(".nii.gz"):
        raise ValueError(f"{nifti_key}: expected a betas .nii.gz key")
    if voxel_set not in VOXEL_SETS:
        raise ValueError(f"voxel_set must be one of {sorted(VOXEL_SETS)}, got {voxel_set!r}")
    return nifti_key[: -len(".nii.gz")] + f".{voxel_set}.hdf5"


def write_compact_betas(path, betas, voxel_ijk, *, source_key: str, grid_shape,
                        voxel_set: str = "nsdgeneral") -> None:
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
        f.attrs["voxel_set"] = voxel_set


def read_compact_betas(path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``betas`` (n_trials, n_voxels) int16 and ``voxel_ijk`` (n_voxels, 3)."""
    with open_hdf5(path, what="compact betas file") as f:
        return f["betas"][()], f["voxel_ijk"][()]
