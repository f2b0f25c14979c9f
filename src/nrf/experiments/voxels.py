"""One table of per-voxel facts beside the scores: noise ceiling, ROI labels,
MNI coordinates, and (on the simulator, when written) ground-truth regions.

``results/{dataset}/voxels/{subject}.csv``, one row per voxel (0-based column
of the prepared responses):
    voxel, x, y, z (MNI mm), noise_ceiling (percent; NSD: from ncsnr for
    ``repeats`` averaged trials; simulator: exact, from the noiseless
    responses), one integer column per ROI atlas (nsd_layout.ROI_ATLASES,
    0 = unlabelled), and ``region`` (the simulator's ground-truth tuning
    region, when its noiseless file holds a ``regions`` dataset).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.checks import open_hdf5
from nrf.data import nsd_layout
from nrf.data.prepared import load_prepared
from nrf.frames import write_frame
from nrf.noise_ceiling import align_noiseless, nsd_noise_ceiling, true_noise_ceiling

logger = logging.getLogger(__name__)

NOISELESS_KEYS = ("image_ids", "responses", "voxel_ijk")


def read_noiseless(path, test_ids, voxel_ijk) -> dict[str, np.ndarray]:
    """The noiseless test responses (n_test, n_voxels) aligned to a prepared
    subject, and ``regions`` (n_voxels,) when the file holds them."""
    with open_hdf5(path, what="simulator's noiseless responses") as f:
        missing = [k for k in NOISELESS_KEYS if k not in f]
        if missing:
            raise ValueError(f"{path}: lacks {missing}; it holds {sorted(f)}")
        rows, cols = align_noiseless(f["image_ids"][()], f["voxel_ijk"][()], test_ids, voxel_ijk, source=str(path))
        out = {"responses": f["responses"][()][rows][:, cols]}
        if "regions" in f:
            regions = f["regions"][()]
            if regions.shape[0] != len(f["voxel_ijk"]):
                raise ValueError(f"{path}: regions has {regions.shape[0]} rows, voxel_ijk {len(f['voxel_ijk'])}")
            out["regions"] = regions[cols]
    return out


def write_voxel_table(prepared_path, out_csv, *, noiseless=None, repeats: int = 3,
                      log: logging.Logger | None = None) -> pd.DataFrame:
    """Write a subject's voxel table; ``noiseless`` (simulator) gives the exact
    ceiling, else NSD's formula from the prepared ``ncsnr``."""
    log = log or logger
    prep = load_prepared(prepared_path, splits=("test",))
    table = pd.DataFrame({"voxel": np.arange(prep.n_voxels)})
    table[["x", "y", "z"]] = prep.coords
    if noiseless is not None:
        truth = read_noiseless(noiseless, prep.test.image_ids, prep.voxel_ijk)
        table["noise_ceiling"] = true_noise_ceiling(truth["responses"], prep.test.responses)
        source = f"exact, from {noiseless}"
        if "regions" in truth:
            table["region"] = truth["regions"].astype(np.int64)
        else:
            log.info("%s holds no 'regions' dataset: no ground-truth region column", noiseless)
    else:
        table["noise_ceiling"] = nsd_noise_ceiling(prep.ncsnr, repeats)
        source = f"NSD's ncsnr formula, {repeats} repeats"
    for atlas in nsd_layout.ROI_ATLASES:
        if atlas not in prep.rois:
            raise ValueError(f"{prepared_path}: lacks roi/{atlas}")
        table[atlas] = prep.rois[atlas].astype(np.int64)
    write_frame(table, out_csv, "voxels")
    log.info("%s: %d voxels, median noise ceiling %.1f %% (%s)", prep.subject, prep.n_voxels,
             float(np.median(table["noise_ceiling"])), source)
    return table
