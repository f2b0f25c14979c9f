"""The feature rule's work: which images, which extractor, one cached file."""

from __future__ import annotations

import h5py
import numpy as np

from nrf.devices import resolve_device
from nrf.features import get_extractor
from nrf.features.cache import extract_to_hdf5

SPLITS = ("train", "val", "test")


def images_seen(prepared_paths) -> np.ndarray:
    """Sorted 0-based ids of every image any of the prepared subjects saw."""
    ids = []
    for path in prepared_paths:
        with h5py.File(path, "r") as f:
            ids += [f[f"{split}/image_ids"][()] for split in SPLITS]
    return np.unique(np.concatenate(ids)).astype(np.int64)


def extractor_options(name: str, options: dict, device: str) -> dict:
    """Constructor options of an extractor from the config's features section."""
    if name == "clip_vitb16":
        return {
            "weights": options["clip_weights"],
            "layers": tuple(options["clip_layers"]),
            "device": resolve_device(device),
            "batch_size": options["batch_size"],
        }
    return {}


def extract_for_subjects(name, options, *, stimuli_path, prepared_paths, out_path, device, log):
    ids = images_seen(prepared_paths)
    log.info("%d images seen by %d subjects", len(ids), len(prepared_paths))
    extractor = get_extractor(name, **extractor_options(name, options, device))
    extract_to_hdf5(extractor, stimuli_path, ids, out_path, batch_size=options["batch_size"], log=log)

