"""The image-block interface: what every feature extractor returns.

NRF's image block G sees two token grids taken at two depths of a network and
one global vector. Any extractor that returns these three arrays can drive
NRF unchanged, so the CLIP extractor (real NSD) and the weight-free filter
bank (simulated default) are interchangeable.

An extractor may also return fWRF's layer maps: one square grid per layer,
each at its own resolution, under ``maps/<layer>`` for the layers it names in
``map_layers`` (AlexNet's conv1..conv5; the filter bank's five grids).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

FEATURE_KEYS = ("tokens_shallow", "tokens_deep", "embedding")
#: the two token grids (fWRF's and the Universal encoder's inputs)
TOKEN_GRIDS = FEATURE_KEYS[:2]
#: the cache's group of per-layer maps (fWRF's input); reading it reads every map in it
MAPS = "maps"


def map_key(layer: str) -> str:
    """The key of one layer's map, ``maps/<layer>``."""
    return f"{MAPS}/{layer}"


class Extractor(ABC):
    """Maps images to {tokens_shallow, tokens_deep, embedding}.

    Returned arrays, for ``images`` of shape (n, H, W, 3) uint8:
        tokens_shallow : (n, n_tokens, token_dim) float32
        tokens_deep    : (n, n_tokens, token_dim) float32
        embedding      : (n, embedding_dim) float32
    """

    name: str
    #: the depths the two token grids are taken at, recorded in the cache
    layers: tuple[int, int]
    #: fWRF's layer maps it also returns, fine to coarse: ``maps/<layer>`` (n, side², channels)
    map_layers: tuple[str, ...] = ()

    @abstractmethod
    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Features of one batch of images (n, H, W, 3) uint8."""


def check_features(features: dict[str, np.ndarray], n_images: int) -> None:
    """Raise if an extractor's output breaks the interface above."""
    missing = [k for k in FEATURE_KEYS if k not in features]
    if missing:
        raise ValueError(f"extractor output lacks {missing}; expected {FEATURE_KEYS}")
    shallow, deep, emb = (features[k] for k in FEATURE_KEYS)
    if shallow.ndim != 3 or shallow.shape != deep.shape:
        raise ValueError(
            f"token grids must share one (n, n_tokens, token_dim) shape, got "
            f"{shallow.shape} and {deep.shape}"
        )
    if emb.ndim != 2:
        raise ValueError(f"embedding must be (n, dim), got {emb.shape}")
    if not (shallow.shape[0] == deep.shape[0] == emb.shape[0] == n_images):
        raise ValueError(f"extractor returned features for a different number of images than {n_images}")
    for key in (k for k in features if k.startswith(MAPS + "/")):
        grid = features[key]
        side = round(grid.shape[1] ** 0.5) if grid.ndim == 3 else 0
        if grid.ndim != 3 or side * side != grid.shape[1] or grid.shape[0] != n_images:
            raise ValueError(f"{key} must be ({n_images}, side², channels), got {grid.shape}")
