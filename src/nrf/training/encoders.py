"""File-level glue for the encoder rules: train, and predict the test images.

Each function reads the pipeline's files (docs/CONTRACTS.md), calls the
array-level code in :mod:`nrf.training.loop`, and writes one
output atomically (nrf.atomic.atomic_output).

Model kinds are dispatched through one registry (nrf.training.registry).

Checkpoint (``.pt``, written by :func:`train_encoder`, read by
:func:`load_encoder`): a dict with
    kind            : a registered kind ("nrf", "linear", ...)
    model_config    : the model's config.to_dict()
    train_config    : TrainConfig.to_dict()
    state_dict      : the model's weights (CPU tensors; NRF's B included)
    history         : list of dicts, one per evaluation (see nrf.training.loop)
    train_image_ids : (n_train,) int64 ids of the images trained on
    n_voxels        : number of voxels (columns of the prepared responses)
    subject, prepared, features, n_train, seed, init_checkpoint : provenance
    sha256          : the sha256 of everything above (:func:`checkpoint_sha256`),
                      verified by :func:`read_checkpoint`: torch.load checks no
                      CRC, so damaged weights would otherwise load as other numbers

Predictions: nrf.data.predictions.

Scores (``results/{dataset}/scores/{model}/{subject}.csv``): nrf.experiments.scoring.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from nrf.atomic import atomic_output
from nrf.checks import corrupt_file
from nrf.data.predictions import write_predictions
from nrf.data.prepared import load_prepared
from nrf.devices import resolve_device
from nrf.features.cache import read_features
from nrf.training.loop import EncodingSplit, TrainConfig, predict, trained_precision
from nrf.training.registry import get_kind

logger = logging.getLogger(__name__)


# -- checkpoints -------------------------------------------------------------------
CHECKSUM_KEY = "sha256"


def _digest(value, h) -> None:
    """Feed ``value`` (a checkpoint's nested dicts, lists, tensors, numbers, strings) into ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"array {value.dtype.str} {value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(f"dict {len(value)}:".encode())
        for key in sorted(value, key=repr):
            _digest(key, h)
            _digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)}:".encode())
        for item in value:
            _digest(item, h)
    else:
        h.update(f"{type(value).__name__} {value!r};".encode())


def checkpoint_sha256(ckpt: dict) -> str:
    """The sha256 of a checkpoint's content (every key but ``sha256``; tensors by dtype, shape and bytes)."""
    h = hashlib.sha256()
    _digest({k: v for k, v in ckpt.items() if k != CHECKSUM_KEY}, h)
    return h.hexdigest()


def save_checkpoint(ckpt: dict, path) -> None:
    """Write a checkpoint atomically, with the sha256 of its content under ``sha256``."""
    with atomic_output(Path(path)) as tmp:
        torch.save({**ckpt, CHECKSUM_KEY: checkpoint_sha256(ckpt)}, tmp)


def read_checkpoint(checkpoint) -> dict:
    """A checkpoint written by :func:`save_checkpoint`, its sha256 verified.

    Raises :class:`nrf.checks.CorruptFileError` naming the file if it does
    not load, holds no checksum, or its content no longer matches it.
    """
    what = "checkpoint"
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises several kinds  # noqa: BLE001
        raise corrupt_file(checkpoint, what, f"torch.load: {type(error).__name__}: {error}") from error
    if not isinstance(ckpt, dict):
        raise corrupt_file(checkpoint, what, f"it holds a {type(ckpt).__name__}, not a checkpoint dict")
    if CHECKSUM_KEY not in ckpt:
        raise corrupt_file(checkpoint, what, "it holds no 'sha256' of its content: written before checkpoints "
                                             "carried one, or not by nrf.training.encoders.save_checkpoint")
    actual = checkpoint_sha256(ckpt)
    if actual != ckpt[CHECKSUM_KEY]:
        raise corrupt_file(checkpoint, what, f"the sha256 of its content is {actual[:16]}..., it says "
                                             f"{str(ckpt[CHECKSUM_KEY])[:16]}...: it changed after it was written")
    return ckpt


def load_encoder(checkpoint, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on ``device``, the checkpoint dict, verified by :func:`read_checkpoint`)."""
    ckpt = read_checkpoint(checkpoint)
    if "kind" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{checkpoint}: not an encoder checkpoint (no 'kind'/'state_dict')")
    model = get_kind(ckpt["kind"]).build(ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(resolve_device(device)).eval(), ckpt


def subset_indices(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Rows of a seeded subset of ``n`` of ``n_total`` images, ascending.

    The subset is the first ``n`` of one seeded permutation, so for a fixed
    seed smaller subsets are nested in larger ones (N = 20 ⊂ 200 ⊂ 800).
    """
    if n is None or n >= n_total:
        if n is not None and n > n_total:
            raise ValueError(f"n_train={n} but only {n_total} training images exist")
        return np.arange(n_total)
    if n < 1:
        raise ValueError(f"n_train must be >= 1, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


# -- the three rule functions ---------------------------------------------------------
def train_encoder(
    kind: str,
    prepared_path,
    features_path,
    out_checkpoint,
    *,
    model_options: dict | None = None,
    train_options: dict | None = None,
    n_train: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    init_checkpoint=None,
    log: logging.Logger | None = None,
) -> dict:
    """Train an encoder on a prepared subject and write its checkpoint.

    kind            : a registered encoder kind (nrf.training.registry)
    model_options   : the model's config fields other than those the data
                      fix (must be empty with ``init_checkpoint``)
    train_options   : TrainConfig fields (seed and device come from the
                      arguments of the same names)
    n_train         : train on a seeded subset of this many training images
                      (all when None)
    init_checkpoint : start from this checkpoint's weights (finetuning; its
                      model config is used)
    Returns the checkpoint dict (also written to ``out_checkpoint``).
    """
    log = log or logger
    encoder = get_kind(kind)
    model_options = dict(model_options or {})
    train_options = dict(train_options or {})
    for key in ("seed", "device"):
        if key in train_options:
            raise ValueError(f"pass {key} as train_encoder's own argument, not in train_options")
    device = resolve_device(device)
    config = TrainConfig(**train_options, seed=seed, device=device)

    prep = load_prepared(prepared_path, splits=("train", "val"))
    rows = subset_indices(prep.train.n_images, n_train, seed)
    train_ids = prep.train.image_ids[rows]
    keys = encoder.feature_keys
    train = EncodingSplit(read_features(features_path, train_ids, keys), prep.train.responses[rows])
    val = None
    if prep.val is not None and prep.val.n_images >= 2:
        val = EncodingSplit(read_features(features_path, prep.val.image_ids, keys), prep.val.responses)
    log.info(
        "%s: %s on %d of %d training images, %d voxels, val %s (%s protocol)",
        prep.subject, kind, len(rows), prep.train.n_images, prep.n_voxels,
        "none" if val is None else f"{val.n_images} images", prep.protocol,
    )

    model = None
    if init_checkpoint is not None:
        if model_options:
            raise ValueError("model_options must be empty with init_checkpoint: the checkpoint fixes the model")
        model, base = load_encoder(init_checkpoint, device)
        if base["kind"] != kind:
            raise ValueError(f"{init_checkpoint} holds a {base['kind']} model, asked to train {kind}")
        log.info("starting from %s", init_checkpoint)

    model, history = encoder.fit(
        train, val, prep.coords, config, model_options=model_options, model=model, log=log,
        source=f"{prepared_path} + {features_path}",
    )

    ckpt = {
        "kind": kind,
        "model_config": model.config.to_dict(),
        "train_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history,
        "train_image_ids": torch.as_tensor(train_ids, dtype=torch.int64),
        "n_voxels": prep.n_voxels,
        "subject": prep.subject,
        "prepared": str(prepared_path),
        "features": str(features_path),
        "n_train": None if n_train is None else int(n_train),
        "seed": int(seed),
        "init_checkpoint": None if init_checkpoint is None else str(init_checkpoint),
    }
    save_checkpoint(ckpt, out_checkpoint)
    log.info("wrote %s", out_checkpoint)
    return ckpt


def predict_test(
    checkpoint,
    prepared_path,
    features_path,
    out_hdf5,
    *,
    chunk_voxels: int = 4096,
    chunk_images: int = 64,
    device: str = "cpu",
    log: logging.Logger | None = None,
) -> None:
    """Predict every test image of a prepared subject at every voxel and write
    the predictions file (keys ``predictions``, ``image_ids``)."""
    log = log or logger
    device = resolve_device(device)
    model, ckpt = load_encoder(checkpoint, device)
    prep = load_prepared(prepared_path, splits=("test",))
    encoder = get_kind(ckpt["kind"])
    if ckpt["n_voxels"] != prep.n_voxels and not encoder.uses_coords:
        raise ValueError(
            f"{checkpoint} predicts {ckpt['n_voxels']} voxels, {prep.subject} has {prep.n_voxels}"
        )
    ids = prep.test.image_ids
    feats = read_features(features_path, ids, encoder.feature_keys)
    pred = predict(
        model, feats, prep.coords if encoder.uses_coords else None,
        chunk_images=chunk_images, chunk_voxels=chunk_voxels, device=device, precision=trained_precision(ckpt),
    )
    write_predictions(out_hdf5, pred, ids)
    log.info("%s: predicted %d test images x %d voxels -> %s", prep.subject, *pred.shape, out_hdf5)
