"""The predictions file: one model's predicted test responses for one subject.

``results/{dataset}/predictions/{model}/{subject}.hdf5``, written by the
prediction rules and read by scoring, decoding and figures:
    predictions : (n_images, n_voxels) float32, columns in the prepared
                  subject's voxel order
    image_ids   : (n_images,) int64, 0-based NSD ids of the rows
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5, require_finite


def write_predictions(path, predictions, image_ids) -> None:
    """Write a predictions file atomically; a non-finite prediction stops here."""
    path = Path(path)
    predictions = np.asarray(predictions, dtype=np.float32)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    if predictions.ndim != 2 or len(predictions) != len(image_ids):
        raise ValueError(f"predictions {predictions.shape} must be (len(image_ids)={len(image_ids)}, n_voxels)")
    require_finite(predictions, name="predictions", source=f"{path} (before writing)")
    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "predictions", predictions)
        add_dataset(f, "image_ids", image_ids)


def read_predictions(path) -> tuple[np.ndarray, np.ndarray]:
    """(predictions (n, n_voxels) float32, image_ids (n,) int64); raises on non-finite values."""
    with open_hdf5(path, what="predictions file") as f:
        pred = f["predictions"][()].astype(np.float32, copy=False)
        ids = f["image_ids"][()].astype(np.int64)
    require_finite(pred, name="predictions", source=path)
    return pred, ids
