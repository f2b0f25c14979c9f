"""The resolution claim, tested where the truth is known (issue 11 item 3).

NRF is said to be "resolution-agnostic": queried between the voxels it was
trained on, it should predict the response there. On the simulator the
noiseless field is known at every MNI coordinate
(``nrf.data.sim_model.SimulatedBrain``), so:

1. held-out coordinates: a 1 mm MNI lattice inside the trained region (the
   subject's nsdgeneral, within one training voxel of a training voxel's
   coordinate), on no training grid; a seeded subset of at most
   ``max_points``;
2. the truth there for the test images (``heldout_truth``);
3. NRF queried at those coordinates, against voxel-locked predictions (the
   linear model's, and NRF's own, at the training voxels) interpolated to
   them, nearest and trilinear on the subject's func grid (scipy), plus the
   noiseless truth at the training voxels interpolated the same way (the
   ceiling of any voxel-locked method);
4. Pearson r across test images per held-out point, summarised per method.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5
from nrf.data.predictions import read_predictions
from nrf.data.prepared import load_prepared
from nrf.data.simulate import SimulatedBrain, SimulationParams
from nrf.frames import write_frame
from nrf.features.cache import read_features
from nrf.metrics import pearson_per_voxel
from nrf.volumes.grid import func_grid_affine, grid_points, mni_grid, training_mask
from nrf.volumes.query import load_nrf, nrf_predictor, predict_points

logger = logging.getLogger(__name__)

METHODS = ("queried", "nearest", "trilinear")


def heldout_lattice(coords_mm, in_region, *, spacing_mm: float = 1.0, max_points: int = 4000,
                    seed: int = 0) -> np.ndarray:
    """(m, 3) points of a ``spacing_mm`` MNI lattice within one training voxel of a training
    coordinate and where ``in_region(points) -> bool`` holds; a seeded subset of ``max_points``."""
    shape, affine = mni_grid(spacing_mm)
    mask = training_mask(coords_mm, shape, affine)
    points = grid_points(shape, affine, mask)
    points = points[in_region(points)]
    if len(points) > max_points:
        points = points[np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))]
    return points


def interpolate_voxels(values, voxel_ijk, grid_affine, points, method: str) -> np.ndarray:
    """Voxel-locked values (n_img, n_vox) at voxels ``voxel_ijk`` of a func grid, read at MNI
    ``points`` (m, 3): ``nearest`` voxel centre, or ``trilinear`` on the func grid (normalised by
    the interpolated voxel indicator, so missing neighbours do not pull towards 0; a point with
    none falls back to nearest). Returns (n_img, m) float32."""
    values = np.asarray(values, np.float32)
    ijk = np.asarray(voxel_ijk, int)
    centres = nib.affines.apply_affine(grid_affine, ijk)
    nearest = values[:, cKDTree(centres).query(points)[1]]
    if method == "nearest":
        return nearest
    if method != "trilinear":
        raise ValueError(f"method must be 'nearest' or 'trilinear', got {method!r}")
    frac = nib.affines.apply_affine(np.linalg.inv(grid_affine), points).T  # (3, m)
    shape = tuple(ijk.max(0) + 2)
    weight = np.zeros(shape, np.float32)
    weight[tuple(ijk.T)] = 1.0
    w = ndimage.map_coordinates(weight, frac, order=1, mode="constant")
    out = nearest.copy()
    ok = w > 1e-3
    vol = np.zeros(shape, np.float32)
    for i in range(len(values)):
        vol[tuple(ijk.T)] = values[i]
        out[i, ok] = ndimage.map_coordinates(vol, frac[:, ok], order=1, mode="constant") / w[ok]
    return out


def score(pred, truth) -> dict:
    """Pearson r across images per point (n_img, m) vs (n_img, m): mean, sem, median."""
    r = pearson_per_voxel(np.asarray(pred, np.float32), np.asarray(truth, np.float32))
    r = r[np.isfinite(r)]
    return {"r_mean": float(r.mean()), "r_sem": float(r.std(ddof=1) / np.sqrt(len(r))),
            "r_median": float(np.median(r)), "n_points": int(len(r))}


def resolution_rows(subject, truth_heldout, truth_voxels, voxel_preds: dict, nrf_heldout, voxel_ijk, grid_affine,
                    points) -> list[dict]:
    """One row per (model, method): r with the truth at held-out points, and at the training voxels."""
    rows = []
    for model, at_voxels in voxel_preds.items():
        at_train = score(at_voxels, truth_voxels)["r_mean"]
        for method in METHODS:
            if method == "queried":
                if model != "NRF":
                    continue
                pred = nrf_heldout
            else:
                pred = interpolate_voxels(at_voxels, voxel_ijk, grid_affine, points, method)
            rows.append({"subject": subject, "model": model, "method": method, **score(pred, truth_heldout),
                         "r_at_training_voxels": at_train})
    return rows


def run_resolution(*, subject, nrf_checkpoint, predictions: dict, prepared, features, simulation: dict,
                   subjects, seed: int, out_csv, out_md, out_truth, spacing_mm: float = 1.0,
                   max_points: int = 4000, chunk_points: int = 8192, device: str = "cpu",
                   log: logging.Logger | None = None) -> pd.DataFrame:
    """The whole experiment for one subject; writes the held-out truth (HDF5) and the table (CSV, MD).

    predictions : {model label: predictions file at the training voxels}, e.g. {"Linear": ..., "NRF": ...}
    simulation, subjects, seed : the simulator's parameters (config), to rebuild its ground truth
    """

    log = log or logger
    brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
    prep = load_prepared(prepared, splits=("test",))
    test_ids = prep.test.image_ids
    # exact float64 coordinates of the training voxels (the prepared file stores float32)
    geo = brain.geometry(subject)
    voxel_mni = geo["mni"][tuple(prep.voxel_ijk.T)]
    grid_affine = func_grid_affine(prep.voxel_ijk, voxel_mni)

    points = heldout_lattice(prep.coords, lambda p: brain.anatomy(p, subject)["nsdgeneral"],
                             spacing_mm=spacing_mm, max_points=max_points, seed=seed)
    truth_heldout = brain.responses(test_ids, points, subject)
    truth_voxels = brain.responses(test_ids, voxel_mni, subject)
    log.info("%s: %d held-out points on a %g mm lattice, %d test images, %d training voxels", subject,
             len(points), spacing_mm, len(test_ids), prep.n_voxels)
    with atomic_output(out_truth) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "coords", points.astype(np.float32))
        add_dataset(f, "image_ids", test_ids)
        add_dataset(f, "responses", truth_heldout.astype(np.float32))
        f.attrs["subject"] = subject
        f.attrs["lattice_mm"] = spacing_mm
        f.attrs["description"] = "noiseless simulator responses at held-out MNI coordinates (mm)"

    model, _ = load_nrf(nrf_checkpoint, device)
    feats = read_features(features, test_ids)
    nrf_heldout = predict_points(nrf_predictor(model, feats, device), points, chunk_points=chunk_points)
    voxel_preds = {}
    for label, path in predictions.items():
        pred, ids = read_predictions(path)
        order = np.argsort(ids)
        if not np.array_equal(ids[order], test_ids):
            raise ValueError(f"{path}: its image ids are not {subject}'s test images")
        voxel_preds[label] = pred[order]
    voxel_preds["Truth (noiseless)"] = truth_voxels
    rows = resolution_rows(subject, truth_heldout, truth_voxels, voxel_preds, nrf_heldout, prep.voxel_ijk,
                           grid_affine, points)
    table = pd.DataFrame(rows)
    table["lattice_mm"] = spacing_mm
    table["voxel_mm"] = float(geo["voxel_size"])
    write_frame(table, out_csv, "table", float_format="%.4f")
    with atomic_output(out_md) as tmp:
        tmp.write_text(_markdown(table, subject, spacing_mm, float(geo["voxel_size"])))
    log.info("\n%s", table.to_string())
    return table


def _markdown(table: pd.DataFrame, subject: str, spacing_mm: float, voxel_mm: float) -> str:
    lines = [
        f"# Resolution: predictions between the training voxels ({subject})",
        "",
        f"Pearson r across test images with the simulator's noiseless response, at {table['n_points'].iloc[0]} "
        f"held-out points of a {spacing_mm:g} mm MNI lattice inside the trained region (the subject's voxels are "
        f"{voxel_mm:.2f} mm). `queried`: NRF evaluated at the point; `nearest`/`trilinear`: a model's predictions "
        "at the training voxels, interpolated on the subject's func grid. The last column is the same model "
        "scored at the training voxels themselves. `Truth (noiseless)` interpolates the true response at the "
        "voxels: the ceiling of any voxel-locked method.",
        "",
        "| model | method | r (mean ± sem) | median r | r at training voxels |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(f"| {row.model} | {row.method} | {row.r_mean:.3f} ± {row.r_sem:.3f} | {row.r_median:.3f} | "
                     f"{row.r_at_training_voxels:.3f} |")
    return "\n".join(lines) + "\n"
