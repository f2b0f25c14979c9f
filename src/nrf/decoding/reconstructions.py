"""The reconstruction file: an HDF5 stack of decoded images, one per test image.

Keys (``results/{dataset}/decoding/{backend}/{source}/{subject}.hdf5``):
    images    : (n_test, H, W, 3) uint8, row r decoded from test image image_ids[r]
                (the layout of NSD's ``imgBrick``)
    image_ids : (n_test,) int64, 0-based NSD ids, sorted ascending
    embedding : (n_test, D) float32, optional: the decoded image features
                (offline backend), in the feature space named by attrs feature_space
attrs: backend, source, subject, and what the backend adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5


@dataclass
class Reconstructions:
    """images (n, H, W, 3) uint8; image_ids (n,) int64; embedding (n, D) float32 or None."""

    images: np.ndarray
    image_ids: np.ndarray
    embedding: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(n, 3, H, W) floats in [0, 1] (clipped) -> (n, H, W, 3) uint8."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    return np.round(images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def to_unit(images: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float32 in [0, 1], the layout nrf.decoding.image_metrics reads."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (n, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def write_reconstructions(path, recon: Reconstructions) -> None:
    """Write atomically; checks shapes and that image_ids are sorted and unique."""
    images = np.asarray(recon.images)
    ids = np.asarray(recon.image_ids, dtype=np.int64)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(ids):
        raise ValueError(
            f"images must be (len(image_ids)={len(ids)}, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if len(ids) > 1 and np.any(np.diff(ids) <= 0):
        raise ValueError("image_ids must be sorted ascending and unique")
    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "images", images)
        add_dataset(f, "image_ids", ids)
        if recon.embedding is not None:
            embedding = np.asarray(recon.embedding, dtype=np.float32)
            if embedding.ndim != 2 or len(embedding) != len(ids):
                raise ValueError(f"embedding must be ({len(ids)}, D), got {embedding.shape}")
            add_dataset(f, "embedding", embedding)
        for key, value in recon.attrs.items():
            f.attrs[key] = value


def read_reconstructions(path) -> Reconstructions:
    with open_hdf5(path, what="reconstructions file") as f:
        for key in ("images", "image_ids"):
            if key not in f:
                raise KeyError(f"{path}: no {key!r} dataset; is this a reconstruction file?")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return Reconstructions(
            images=f["images"][()],
            image_ids=f["image_ids"][()].astype(np.int64),
            embedding=f["embedding"][()].astype(np.float32) if "embedding" in f else None,
            attrs=attrs,
        )
