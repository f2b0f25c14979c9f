"""File-level glue for the rules beyond one-subject encoders: the joint
Universal encoder over several prepared subjects, its prediction for one
subject, transfer to a held-out subject, and scores of models trained on a
subset of N images (the transfer figure's curves).

Joint checkpoint: the shared checkpoint format (nrf.encoding) with
``subject`` = the subjects joined by "+", ``subjects`` (list), ``n_voxels``
a list per subject, ``prepared`` a list; the model holds one embedding table
per subject and :func:`predict_joint` selects one.
Subset scores CSV (``results/{dataset}/subset_scores/{model}/{subject}_n{N}_d{draw}.csv``):
voxel, pearson, mse, as nrf.scoring.score_predictions writes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from nrf.data.predictions import write_predictions
from nrf.data.prepared import load_prepared
from nrf.devices import resolve_device
from nrf.encoding import _atomic_torch_save, load_encoder, predict_test, train_encoder
from nrf.scoring import score_predictions
from nrf.features.cache import read_features
from nrf.models.registry import TOKEN_GRIDS
from nrf.models.universal import SubjectData, train_universal, transfer_universal
from nrf.training import EncodingSplit, TrainConfig, predict

logger = logging.getLogger(__name__)

def train_joint(prepared_paths, features_path, out_checkpoint, *, model_options=None, train_options=None,
                seed: int = 0, device: str = "cpu", log: logging.Logger | None = None) -> dict:
    """Train one Universal encoder jointly on several prepared subjects and
    write one checkpoint with an embedding table per subject.

    The step counts of ``train_options`` (max_steps, min_steps, eval_every)
    are per subject: joint training over S subjects runs S times as many
    steps, so each subject's voxel embeddings get as many updates as in
    single-subject training (the batch size stays the paper's).
    """
    log = log or logger
    device = resolve_device(device)
    n = len(prepared_paths)
    options = dict(train_options or {})
    for key in ("max_steps", "min_steps", "eval_every"):
        if options.get(key):
            options[key] = int(options[key]) * n
    config = TrainConfig(**options, seed=seed, device=device)
    subjects = []
    for path in prepared_paths:
        prep = load_prepared(path, splits=("train", "val"))
        train = EncodingSplit(read_features(features_path, prep.train.image_ids, TOKEN_GRIDS), prep.train.responses)
        val = None
        if prep.val is not None and prep.val.n_images >= 2:
            val = EncodingSplit(read_features(features_path, prep.val.image_ids, TOKEN_GRIDS), prep.val.responses)
        subjects.append(SubjectData(prep.subject, train, val))
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError(f"prepared files {list(map(str, prepared_paths))} repeat a subject: {names}")
    model, history = train_universal(subjects, config, model_options=model_options, log=log,
                                     source=f"{len(names)} prepared subjects + {features_path}")
    ckpt = {
        "kind": "universal",
        "model_config": model.config.to_dict(),
        "train_config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history,
        "subject": "+".join(names),
        "subjects": names,
        "n_voxels": [s.train.responses.shape[1] for s in subjects],
        "prepared": [str(p) for p in prepared_paths],
        "features": str(features_path),
        "n_train": None,
        "seed": int(seed),
        "init_checkpoint": None,
    }
    _atomic_torch_save(ckpt, Path(out_checkpoint))
    log.info("wrote %s (subjects %s)", out_checkpoint, names)
    return ckpt


def predict_joint(checkpoint, prepared_path, features_path, out_hdf5, *, device: str = "cpu",
                  log: logging.Logger | None = None) -> None:
    """Predict one subject's test images with its embeddings in a joint checkpoint."""
    log = log or logger
    device = resolve_device(device)
    model, ckpt = load_encoder(checkpoint, device)
    prep = load_prepared(prepared_path, splits=("test",))
    if prep.subject not in model.config.subjects:
        raise ValueError(f"{checkpoint} has no embeddings for {prep.subject}; it holds {model.config.subjects}")
    model.select(prep.subject)
    if model.embeddings[prep.subject].shape[0] != prep.n_voxels:
        raise ValueError(f"{checkpoint}: {prep.subject} has {model.embeddings[prep.subject].shape[0]} voxels "
                         f"in the model, {prep.n_voxels} in {prepared_path}")
    ids = prep.test.image_ids
    pred = predict(model, read_features(features_path, ids, TOKEN_GRIDS), device=device)
    write_predictions(out_hdf5, pred, ids)
    log.info("%s: predicted %d test images x %d voxels -> %s", prep.subject, *pred.shape, out_hdf5)


def _score_model(model, prepared_path, features_path, out_csv, log) -> dict:
    prep = load_prepared(prepared_path, splits=("test",))
    ids = prep.test.image_ids
    pred = predict(model, read_features(features_path, ids, TOKEN_GRIDS), device=next(model.parameters()).device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.hdf5"
        write_predictions(path, pred, ids)
        return score_predictions(path, prepared_path, out_csv, log=log)


def transfer_scores(joint_checkpoint, target_prepared, features_path, out_csv, *, n_train: int, seed: int,
                    train_options=None, device: str = "cpu", log: logging.Logger | None = None) -> dict:
    """Transfer a joint Universal encoder to a held-out subject on ``n_train``
    of its images (only its embeddings learn) and score its test images."""
    log = log or logger
    model, info = transfer_universal(joint_checkpoint, target_prepared, features_path, n_train, seed,
                                     train_options=train_options, device=resolve_device(device), log=log)
    summary = _score_model(model, target_prepared, features_path, out_csv, log)
    log.info("Universal transfer to %s on %d images (seed %d): %s", info["subject"], n_train, seed, summary)
    return summary


def subset_scores(kind, prepared_path, features_path, out_csv, *, n_train: int, seed: int, model_options=None,
                  train_options=None, device: str = "cpu", log: logging.Logger | None = None) -> dict:
    """Train a fresh encoder of ``kind`` on a seeded subset of ``n_train``
    training images (nrf.encoding.subset_indices) and score its test images."""
    log = log or logger
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, pred = Path(tmp) / "model.pt", Path(tmp) / "predictions.hdf5"
        train_encoder(kind, prepared_path, features_path, ckpt, model_options=model_options,
                      train_options=train_options, n_train=n_train, seed=seed, device=device, log=log)
        predict_test(ckpt, prepared_path, features_path, pred, device=device, log=log)
        return score_predictions(pred, prepared_path, out_csv, log=log)


def embeddings_of(checkpoint, subjects) -> dict[str, np.ndarray]:
    """Voxel embeddings (n_voxels, E) of ``subjects`` in a Universal checkpoint."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out = {}
    for s in subjects:
        key = f"embeddings.{s}"
        if key not in ckpt["state_dict"]:
            raise ValueError(f"{checkpoint} has no embeddings for {s}")
        out[s] = ckpt["state_dict"][key].numpy()
    return out
