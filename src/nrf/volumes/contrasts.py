"""In-silico contrasts: two image sets through a model, compared at every MNI grid point.

:func:`contrast_maps` is the statistic (mean difference and Welch's t across
images, per point); :func:`write_contrast` evaluates any predictor (an NRF's,
``nrf.volumes.nrf_predictor``, or the simulator's ground truth) chunk by chunk
on a masked MNI grid and writes both maps as 3-D NIfTI (code 4, MNI);
its figure is :func:`nrf.reporting.fig_contrast.plot_contrast`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

from nrf.atomic import atomic_output
from nrf.data.simulate import REGIONS, SimulatedBrain, SimulationParams
from nrf.volumes.query import nrf_predictor, prepare_query, save_mni_nifti, write_volume

logger = logging.getLogger(__name__)


def contrast_maps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean difference and Welch's t of set A over set B, per point.

    a : (n_a, n_points), b : (n_b, n_points) responses, n_a, n_b >= 2.
    Returns (mean_a - mean_b, t), each (n_points,) float32; t is 0 where both
    sets have zero variance.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each image set needs at least 2 images for a t map, got {len(a)} and {len(b)}")
    diff = a.mean(0) - b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    t = np.divide(diff, se, out=np.zeros_like(diff), where=se > 0)
    return diff.astype(np.float32), t.astype(np.float32)


def contrast_predictor(predict_a: Callable, predict_b: Callable) -> Callable:
    """points (m, 3) -> (2, m): [mean difference, t] of two predictors' image sets."""

    def predict(points):
        return np.stack(contrast_maps(predict_a(points), predict_b(points)))

    return predict


def write_contrast(predict_a: Callable, predict_b: Callable, mask, affine, out_prefix, *,
                   chunk_points: int = 8192) -> dict[str, Path]:
    """Write ``{out_prefix}_difference.nii.gz`` and ``{out_prefix}_t.nii.gz`` (3-D float32, MNI)."""
    out_prefix = Path(out_prefix)
    both = out_prefix.with_name(out_prefix.name + "_both.nii")
    paths = {"difference": out_prefix.with_name(out_prefix.name + "_difference.nii.gz"),
             "t": out_prefix.with_name(out_prefix.name + "_t.nii.gz")}
    write_volume(contrast_predictor(predict_a, predict_b), mask, affine, 2, both, chunk_points=chunk_points)
    try:
        data = np.asarray(nib.load(both).dataobj)
        save_mni_nifti(data[..., 0], affine, paths["difference"])
        save_mni_nifti(data[..., 1], affine, paths["t"])
    finally:
        both.unlink(missing_ok=True)
    return paths


def peak(t_img, mask=None) -> dict:
    """Where a t map is largest and smallest: {max_mm, max_t, min_mm, min_t}."""
    data = np.asarray(t_img.dataobj, dtype=np.float64)
    if mask is not None:
        data = np.where(mask, data, np.nan)
    hi, lo = np.nanargmax(data), np.nanargmin(data)
    to_mm = lambda i: nib.affines.apply_affine(t_img.affine, np.unravel_index(i, data.shape)).tolist()  # noqa: E731
    return {"max_mm": to_mm(hi), "max_t": float(data.flat[hi]), "min_mm": to_mm(lo), "min_t": float(data.flat[lo])}


def query_contrast(checkpoint, images_a, images_b, out_prefix, *, resolution: float, mask: str = "training",
                   labels=("A", "B"), prepared=None, features=None, extractor=None, extractor_options=None,
                   stimulus_size=None, chunk_points: int = 8192, device: str = "cpu",
                   simulation: dict | None = None, subjects=None, seed: int = 0, subject: str | None = None,
                   log: logging.Logger | None = None) -> dict:
    """An NRF checkpoint's contrast between two image folders: NIfTI maps and a JSON summary
    (the figure is :func:`nrf.reporting.fig_contrast.plot_contrast`'s, drawn from the t map).

    With the simulator's parameters (``simulation``, ``subjects``, ``seed``), the summary also
    names the simulator's tuning region at the map's peak and trough (for ``subject``).
    """
    log = log or logger
    common = dict(resolution=resolution, mask=mask, prepared=prepared, features=features, extractor=extractor,
                  extractor_options=extractor_options, stimulus_size=stimulus_size, device=device)
    qa = prepare_query(checkpoint, images_a, **common)
    qb = prepare_query(checkpoint, images_b, **common)
    paths = write_contrast(nrf_predictor(qa.model, qa.features, device), nrf_predictor(qb.model, qb.features,
                                                                                           device),
                           qa.mask, qa.affine, out_prefix, chunk_points=chunk_points)
    summary = {"checkpoint": str(checkpoint), "extractor": qa.extractor, "mask": mask,
               "resolution_mm": float(resolution), "labels": list(labels),
               "images_a": [{"file": n, "sha256": h} for n, h in zip(qa.images.names, qa.images.sha256)],
               "images_b": [{"file": n, "sha256": h} for n, h in zip(qb.images.names, qb.images.sha256)],
               **peak(nib.load(paths["t"]), qa.mask)}
    if simulation is not None:
        brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
        regions = brain.regions(np.array([summary["max_mm"], summary["min_mm"]]), subject)
        summary["simulator_region_at_max"] = REGIONS[regions[0]]
        summary["simulator_region_at_min"] = REGIONS[regions[1]]
    with atomic_output(Path(str(out_prefix) + ".json")) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info("contrast %s > %s: peak t %.2f at %s", *labels, summary["max_t"], summary["max_mm"])
    return summary
