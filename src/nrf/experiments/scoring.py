"""Scoring a predictions file (nrf.data.predictions) against the prepared
subject's test responses: the per-voxel scores CSV every table reads
(``results/{dataset}/scores/{model}/{subject}.csv``: one row per voxel, the
0-based column of the prepared responses: voxel, pearson, mse; ``pearson``
is empty (NaN) for a voxel whose prediction is constant), and the image
retrieval CSV beside it (:func:`score_test`). Needs no torch: the rules that
predict and score in one job (rules/encoders.smk) load it for the prediction."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.data.predictions import read_predictions
from nrf.data.prepared import load_prepared
from nrf.frames import write_frame
from nrf.metrics import mse_per_voxel, pearson_per_voxel, summarise
from nrf.retrieval import write_retrieval

logger = logging.getLogger(__name__)


def score_predictions(predictions_hdf5, prepared_path, out_csv, *, log: logging.Logger | None = None) -> dict:
    """Score a predictions file against the prepared test responses and write
    the per-voxel CSV (voxel, pearson, mse). Returns :func:`nrf.metrics.summarise`."""
    log = log or logger
    pred, ids = read_predictions(predictions_hdf5)
    prep = load_prepared(prepared_path, splits=("test",))
    test = prep.test
    if pred.shape[1] != prep.n_voxels:
        raise ValueError(f"{predictions_hdf5}: {pred.shape[1]} voxels, {prep.subject} has {prep.n_voxels}")
    order = np.argsort(ids)
    if not np.array_equal(ids[order], test.image_ids):
        raise ValueError(
            f"{predictions_hdf5}: its {len(ids)} image ids are not {prep.subject}'s "
            f"{test.n_images} test images — rebuild it: snakemake --cores 1 --force {predictions_hdf5}"
        )
    pred = pred[order]
    r = pearson_per_voxel(pred, test.responses)
    mse = mse_per_voxel(pred, test.responses)
    scores = pd.DataFrame({"voxel": np.arange(len(r)), "pearson": r, "mse": mse})
    write_frame(scores, out_csv, "scores")  # an undefined r is an empty cell
    summary = summarise(r, mse)
    log.info("%s: %s", prep.subject, summary)
    return summary


def score_test(predictions_hdf5, prepared_path, out_scores, out_retrieval, *,
               log: logging.Logger | None = None) -> tuple[dict, dict]:
    """Everything a test-set predictions file is scored by: the per-voxel CSV
    (:func:`score_predictions`) and image retrieval (nrf.retrieval.write_retrieval).
    Returns both summaries."""
    return (score_predictions(predictions_hdf5, prepared_path, out_scores, log=log),
            write_retrieval(predictions_hdf5, prepared_path, out_retrieval, log=log))
