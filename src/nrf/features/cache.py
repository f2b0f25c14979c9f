"""The features cache: read stimuli, run an extractor once, store its outputs.

The image block's network is frozen, so its outputs are computed once per
image and stored (``results/{dataset}/features/{extractor}.hdf5``):

    image_ids      : (n,) int64, sorted, unique
    tokens_shallow : (n, n_tokens, token_dim) float16, one chunk per image
    tokens_deep    : (n, n_tokens, token_dim) float16, one chunk per image
    embedding      : (n, embedding_dim) float32
    maps/<layer>   : (n, side², channels) float16, one chunk per image, for each
                     of the extractor's ``map_layers`` (fWRF's input; absent when
                     it has none); the group's attr ``layers`` lists them in order
    attrs          : extractor (name), layers (2,) int64

Stimuli come from an HDF5 file with ``imgBrick`` (n, H, W, 3) uint8: either
the full brick (row r holds image r) or a subset file that also has
``image_ids`` (n,) int64 sorted (row r holds image ``image_ids[r]``).

Only the requested rows are read. h5py's fancy indexing needs increasing
indices, so every read takes the sorted unique rows and reorders in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5, require_finite
from nrf.features.base import FEATURE_KEYS, MAPS, Extractor, check_features, map_key
from nrf.runlog import as_logfn

logger = logging.getLogger(__name__)


class MissingImagesError(KeyError):
    """Requested image ids that a stimuli or features file does not hold."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def read_stimuli(path, image_ids) -> np.ndarray:
    """Images ``image_ids`` (0-based 73k ids) from ``path``, in the requested order.

    Returns
    -------
    images : (n, H, W, 3) uint8
    """
    ids = _as_ids(image_ids, path)
    with open_hdf5(path, what="stimuli file") as f:
        if "imgBrick" not in f:
            raise KeyError(f"{path}: no 'imgBrick' dataset; is this an NSD stimuli file?")
        stored = f["image_ids"][()].astype(np.int64) if "image_ids" in f else None
        rows = _rows_for(ids, stored, len(f["imgBrick"]), path, what="images")
        return _read_rows(f["imgBrick"], rows)


def extract_to_hdf5(
    extractor: Extractor,
    stimuli_path,
    image_ids,
    out_path,
    *,
    batch_size: int = 64,
    log: logging.Logger | Callable[[str], None] | None = None,
) -> None:
    """Run ``extractor`` on images ``image_ids`` and write the features file.

    The ids are sorted and de-duplicated. The file is written under a
    temporary name beside ``out_path`` and moved into place at the end, so a
    crash leaves no file at ``out_path``.

    Parameters
    ----------
    extractor : an :class:`~nrf.features.base.Extractor`
    stimuli_path : HDF5 with ``imgBrick`` (see :func:`read_stimuli`)
    image_ids : (n,) int, 0-based image ids
    out_path : the features file to write
    batch_size : images read and extracted at a time
    log : a logging.Logger or a callable taking a message (default: this module's logger)
    """
    say = as_logfn(log)
    out_path = Path(out_path)
    ids = np.unique(_as_ids(image_ids, stimuli_path))
    if len(ids) == 0:
        raise ValueError(f"{out_path}: no image ids to extract features for")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    layers = np.asarray(extractor.layers, dtype=np.int64)

    say(f"{extractor.name}: extracting {len(ids)} images from {stimuli_path} -> {out_path}")
    with atomic_output(out_path) as tmp:
        with open_hdf5(stimuli_path, what="stimuli file") as src, new_hdf5(tmp) as dst:
            if "imgBrick" not in src:
                raise KeyError(f"{stimuli_path}: no 'imgBrick' dataset; is this an NSD stimuli file?")
            bricks = src["imgBrick"]
            stored = src["image_ids"][()].astype(np.int64) if "image_ids" in src else None
            rows = _rows_for(ids, stored, len(bricks), stimuli_path, what="images")

            add_dataset(dst, "image_ids", ids)
            dst.attrs["extractor"] = extractor.name
            dst.attrs["layers"] = layers
            shapes = None
            keys = FEATURE_KEYS + tuple(map_key(layer) for layer in extractor.map_layers)
            for start in range(0, len(ids), batch_size):
                stop = min(start + batch_size, len(ids))
                images = _read_rows(bricks, rows[start:stop])
                features = extractor.extract(images)
                check_features(features, stop - start)
                missing = [k for k in keys if k not in features]
                if missing:
                    raise ValueError(f"{extractor.name}: its output lacks the layer maps {missing}")
                if shapes is None:
                    shapes = {k: np.shape(features[k])[1:] for k in keys}
                    _create_feature_datasets(dst, len(ids), shapes)
                    if extractor.map_layers:
                        dst[MAPS].attrs["layers"] = list(extractor.map_layers)
                for key in keys:
                    if np.shape(features[key])[1:] != shapes[key]:
                        raise ValueError(
                            f"{extractor.name}: {key} has shape {np.shape(features[key])[1:]} per "
                            f"image in images {start}..{stop - 1}, {shapes[key]} before"
                        )
                    _write(dst[key], start, stop, features[key], key)
                say(f"{extractor.name}: {stop}/{len(ids)} images")
    say(f"{extractor.name}: wrote {out_path}")


def read_features(path, image_ids, keys: Sequence[str] = FEATURE_KEYS) -> dict[str, np.ndarray]:
    """Cached features of ``image_ids``, in the requested order.

    Token grids stay float16 in memory, as stored: CLIP's tokens of 9,000
    training images take ~5.4 GB so, against ~11 GB as float32 (models cast
    each batch). A non-finite value stops here, with the file named.

    Returns
    -------
    dict with, for each of ``keys`` (default the three of the interface):
        tokens_shallow, tokens_deep : (n, n_tokens, token_dim) float16
        embedding                   : (n, embedding_dim) float32
        maps/<layer>                : (n, side², channels) float16; the key
                                      ``maps`` reads every layer, in order
    """
    unknown = [k for k in keys if k not in FEATURE_KEYS and k != MAPS and not k.startswith(MAPS + "/")]
    if unknown:
        raise ValueError(f"unknown feature keys {unknown}; choose from {FEATURE_KEYS} or {MAPS!r}")
    ids = _as_ids(image_ids, path)
    with open_hdf5(path, what="features file") as f:
        stored = f["image_ids"][()].astype(np.int64)
        rows = _rows_for(ids, stored, len(stored), path, what="features")
        out = {}
        for key in _expand_maps(f, keys, path):
            dtype = np.float32 if key == "embedding" else np.float16
            out[key] = require_finite(_read_rows(f[key], rows).astype(dtype, copy=False), name=key, source=path)
        return out


def read_feature_info(path) -> dict:
    """What a features file holds: extractor, layers, image_ids, per-image
    shapes, and its layer maps (``map_layers``, in order; empty when none)."""
    with open_hdf5(path, what="features file") as f:
        maps = _map_layers(f)
        return {
            "extractor": str(f.attrs["extractor"]),
            "layers": tuple(int(x) for x in f.attrs["layers"]),
            "image_ids": f["image_ids"][()].astype(np.int64),
            **{f"{key}_shape": tuple(f[key].shape[1:]) for key in FEATURE_KEYS},
            "map_layers": maps,
            **{f"{map_key(layer)}_shape": tuple(f[map_key(layer)].shape[1:]) for layer in maps},
        }


def _map_layers(f: h5py.File) -> tuple[str, ...]:
    return tuple(str(x) for x in f[MAPS].attrs["layers"]) if MAPS in f else ()


def _expand_maps(f: h5py.File, keys, path) -> list[str]:
    """``keys`` with ``maps`` replaced by every layer map of the file, in order."""
    out = []
    for key in keys:
        if key != MAPS:
            out.append(key)
        elif not _map_layers(f):
            raise KeyError(f"{path}: no layer maps ('{MAPS}/...'); fWRF needs an extractor that writes them "
                           f"(alexnet, filterbank), this file is {f.attrs['extractor']!r}'s")
        else:
            out.extend(map_key(layer) for layer in _map_layers(f))
    return out


# -- helpers -------------------------------------------------------------------


def _as_ids(image_ids, path) -> np.ndarray:
    ids = np.asarray(image_ids)
    if ids.ndim != 1:
        raise ValueError(f"{path}: image_ids must be 1-D, got shape {ids.shape}")
    if len(ids) and not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.mod(ids, 1) == 0):
            raise ValueError(f"{path}: image_ids must be integers, got {ids.dtype}")
    return ids.astype(np.int64)


def _rows_for(ids: np.ndarray, stored: np.ndarray | None, n_rows: int, path, what: str) -> np.ndarray:
    """Row of each requested id: ``stored`` is the file's sorted ids, None if row r = id r."""
    if stored is None:
        missing = ids[(ids < 0) | (ids >= n_rows)]
        rows = ids
    else:
        if len(stored) > 1 and np.any(np.diff(stored) <= 0):
            raise ValueError(f"{path}: its image_ids are not sorted and unique")
        rows = np.searchsorted(stored, ids)
        found = rows < len(stored)
        found[found] = stored[rows[found]] == ids[found]
        missing = ids[~found]
    if len(missing):
        missing = np.unique(missing)
        shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        held = f"ids 0..{n_rows - 1}" if stored is None else f"{len(stored)} ids"
        raise MissingImagesError(
            f"{path}: {len(missing)} requested image id(s) not in the file ({held}): {shown}"
            + (" — were the features extracted for these images?" if what == "features" else "")
        )
    return rows


def _read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for any rows (unsorted, repeated), reading each row once.

    Rows are read one contiguous run at a time: h5py's fancy indexing on the
    chunked (n, 196, 768) token arrays is ~25x slower than slices.
    """
    if len(rows) == 0:
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    block = np.empty((len(unique), *dataset.shape[1:]), dtype=dataset.dtype)
    starts = np.flatnonzero(np.r_[True, np.diff(unique) != 1])
    for first, last in zip(starts, np.r_[starts[1:], len(unique)]):
        block[first:last] = dataset[int(unique[first]) : int(unique[last - 1]) + 1]
    if len(unique) == len(rows) and np.array_equal(unique, rows):
        return block
    return block[inverse.reshape(-1)]


def _create_feature_datasets(f: h5py.File, n: int, shapes: dict) -> None:
    for key in (k for k in shapes if k != "embedding"):  # the token grids and layer maps
        add_dataset(f, key, shape=(n, *shapes[key]), dtype=np.float16, chunks=(1, *shapes[key]))
    add_dataset(f, "embedding", shape=(n, *shapes["embedding"]), dtype=np.float32)


def _write(dataset: h5py.Dataset, start: int, stop: int, values, key: str) -> None:
    with np.errstate(over="ignore"):  # overflow is reported below, with context
        values = np.asarray(values, dtype=dataset.dtype)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{key}: non-finite values in images {start}..{stop - 1} after casting to "
            f"{dataset.dtype} (overflow?)"
        )
    dataset[start:stop] = values
