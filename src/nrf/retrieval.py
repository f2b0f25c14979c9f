"""Image retrieval from predicted responses (the Universal Brain Encoder's
"retrieval rank"), for any encoder.

For each measured test response (one image's pattern over voxels), every test
image is ranked by the Pearson correlation, across voxels, between that
measured pattern and the image's predicted pattern. The measured image's own
rank (1 = retrieved first) is recorded; chance is top-1 = 1/n, top-5 = 5/n,
mean rank = (n + 1)/2 for n test images.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.data.predictions import read_predictions
from nrf.data.prepared import load_prepared
from nrf.frames import write_frame


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def pattern_correlations(measured, predicted) -> np.ndarray:
    """(n_measured, n_predicted) Pearson r across voxels between rows.

    measured, predicted : (n_images, n_voxels), rows in the same image order.
    A constant row correlates 0 with everything.
    """
    m, p = np.asarray(measured), np.asarray(predicted)
    if m.ndim != 2 or m.shape[1] != p.shape[1]:
        raise ValueError(f"measured {m.shape} and predicted {p.shape} must be (n_images, n_voxels)")
    return _zscore_rows(m) @ _zscore_rows(p).T


def retrieval_ranks(measured, predicted) -> np.ndarray:
    """Rank (1-based) of each measured image's own prediction among all
    predicted test images: (n_images,) int. Ties count against the image
    (rank = 1 + the number of images correlating at least as well, other
    than itself), so a constant prediction never retrieves by luck."""
    measured, predicted = np.asarray(measured), np.asarray(predicted)
    if measured.shape != predicted.shape:
        raise ValueError(f"measured {measured.shape} and predicted {predicted.shape} differ")
    corr = pattern_correlations(measured, predicted)
    own = np.diag(corr)[:, None]
    others = ~np.eye(len(corr), dtype=bool)
    return 1 + ((corr >= own) & others).sum(axis=1)


def retrieval_summary(ranks) -> dict[str, float]:
    """top1, top5 (fractions), mean_rank, and their chance levels for n images."""
    ranks = np.asarray(ranks)
    n = len(ranks)
    return {
        "n_images": n,
        "top1": float(np.mean(ranks <= 1)),
        "top5": float(np.mean(ranks <= 5)),
        "mean_rank": float(np.mean(ranks)),
        "chance_top1": 1.0 / n,
        "chance_top5": min(5, n) / n,
        "chance_mean_rank": (n + 1) / 2.0,
    }


def write_retrieval(predictions_hdf5, prepared_path, out_csv, *, log=None) -> dict[str, float]:
    """Rank every measured test image among the predicted test images and write
    ``image_id, rank`` (one row per test image); returns :func:`retrieval_summary`."""
    log = log or logging.getLogger(__name__)
    pred, ids = read_predictions(predictions_hdf5)
    test = load_prepared(prepared_path, splits=("test",)).test
    order = np.argsort(ids)
    if not np.array_equal(ids[order], test.image_ids) or pred.shape[1] != test.responses.shape[1]:
        raise ValueError(f"{predictions_hdf5}: images or voxels differ from {prepared_path}'s test split "
                         f"— rebuild it: snakemake --cores 1 --force {predictions_hdf5}")
    ranks = retrieval_ranks(test.responses, pred[order])
    write_frame(pd.DataFrame({"image_id": test.image_ids, "rank": ranks}), out_csv, "retrieval")
    summary = retrieval_summary(ranks)
    log.info("retrieval: %s", summary)
    return summary
