"""The Universal Brain Encoder's experiments: one model trained jointly on
every subject (:func:`train_joint`, :func:`predict_joint`; Table 1 and the
Universal table), its transfer to a held-out subject (the transfer figure) and
the voxel embeddings the cluster figure reads.

Transfer learns only the held-out subject's voxel embeddings from N of its
images, drawn by :func:`nrf.experiments.cell.draw_rows`: the same images as
the adaptation cell (subject, N, draw) whose NRF scratch and finetune-ensemble
numbers the transfer figure draws beside it. Under the ``authors`` variant it
follows ``train_transfer/train_encoder_transfer.py`` of
WeizmannVision/universal-brain-encoder-code: every shared weight frozen, the
new embeddings drawn with the initial spread, Adam(amsgrad) at ``lr`` with no
schedule, ``epochs`` (50) epochs over the N images, and the state with the
best 75th-percentile voxel r on the subject's validation split kept.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import numpy as np

from nrf.data.predictions import write_predictions
from nrf.data.prepared import load_prepared
from nrf.devices import resolve_device
from nrf.experiments.cell import draw_rows
from nrf.experiments.scoring import score_predictions
from nrf.features.base import TOKEN_GRIDS
from nrf.features.cache import read_features
from nrf.models.universal import UniversalEncoder
from nrf.training.encoders import load_encoder, read_checkpoint, save_checkpoint
from nrf.training.loop import EncodingSplit, TrainConfig, predict, trained_precision
from nrf.training.universal import SubjectData, train_universal

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
    save_checkpoint(ckpt, out_checkpoint)
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
    pred = predict(model, read_features(features_path, ids, TOKEN_GRIDS), device=device,
                   precision=trained_precision(ckpt))
    write_predictions(out_hdf5, pred, ids)
    log.info("%s: predicted %d test images x %d voxels -> %s", prep.subject, *pred.shape, out_hdf5)


#: the authors' transfer runs this many epochs over the N images
AUTHORS_TRANSFER_EPOCHS = 50


def transfer_schedule(n_train: int, batch_images: int, epochs: int) -> dict:
    """TrainConfig fields of the authors' transfer: ``epochs`` epochs of
    ceil(N / batch) steps, validated after each, no schedule (patience None)."""
    epoch = max(1, math.ceil(n_train / max(1, min(batch_images, n_train))))
    return {"max_steps": epochs * epoch, "eval_every": epoch, "min_steps": 0, "patience": None}


def transfer_universal(joint_checkpoint, target_prepared, features, n_train: int, draw: int, seed: int, *,
                       train_options: dict | None = None, transfer_options: dict | None = None,
                       device: str = "cpu", log: logging.Logger | None = None) -> tuple[UniversalEncoder, dict]:
    """Transfer a jointly trained Universal encoder to a held-out subject:
    only the target's voxel embeddings are learned, from the ``n_train``
    images of adaptation draw ``draw`` (:func:`nrf.experiments.cell.draw_rows`),
    seeded ``seed + draw`` as the cell's own trainings. ``features`` is the
    feature cache path.

    compact : ``max_steps`` steps, no validation, the final state.
    authors : ``transfer_options["epochs"]`` (default 50) epochs over the N
              images (``max_steps`` is ignored); after each the target's
              validation split (the prepared ``val``: a held-out share of its
              training images under the clean protocol, its test images under
              the paper protocol, as every method's selection there) is
              predicted, and the state with the best 75th-percentile r kept;
              the final state when the subject has no validation split.

    Returns (model selected to the target subject, info: subject,
    train_image_ids, val_images, history).
    """
    model, ckpt = load_encoder(joint_checkpoint, device)
    if ckpt["kind"] != "universal":
        raise ValueError(f"{joint_checkpoint} holds a {ckpt['kind']} model, not a Universal encoder")
    authors = model.config.variant == "authors"
    prep = load_prepared(target_prepared, splits=("train", "val") if authors else ("train",))
    if prep.subject in model.config.subjects:
        raise ValueError(f"{prep.subject} was among the subjects {joint_checkpoint} was trained on; "
                         f"transfer needs a held-out subject")
    rows = draw_rows(prep.train.n_images, n_train, seed, draw)
    ids = prep.train.image_ids[rows]
    keys = model.config.layer_keys
    train = EncodingSplit(read_features(features, ids, keys), prep.train.responses[rows])
    options = {**(train_options or {}), "patience": None, "seed": seed + draw, "device": device}
    val = None
    if authors:
        epochs = int((transfer_options or {}).get("epochs", AUTHORS_TRANSFER_EPOCHS))
        options.update(transfer_schedule(n_train, int(options.get("batch_images", 32)), epochs))
        if prep.val is not None and prep.val.n_images >= 2:
            val = EncodingSplit(read_features(features, prep.val.image_ids, keys), prep.val.responses)
    model.add_subject(prep.subject, prep.n_voxels, seed=seed + draw)
    model, history = train_universal([SubjectData(prep.subject, train, val)], TrainConfig(**options), model=model,
                                     trainable="embeddings", log=log, source=str(target_prepared))
    return model, {"subject": prep.subject, "train_image_ids": ids,
                   "val_images": 0 if val is None else val.n_images, "history": history,
                   "precision": TrainConfig(**options).precision}


def _score_model(model, prepared_path, features_path, out_csv, log, precision: str) -> dict:
    prep = load_prepared(prepared_path, splits=("test",))
    ids = prep.test.image_ids
    pred = predict(model, read_features(features_path, ids, TOKEN_GRIDS), device=next(model.parameters()).device,
                   precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.hdf5"
        write_predictions(path, pred, ids)
        return score_predictions(path, prepared_path, out_csv, log=log)


def transfer_scores(joint_checkpoint, target_prepared, features_path, out_csv, *, n_train: int, draw: int, seed: int,
                    train_options=None, transfer_options=None, device: str = "cpu",
                    log: logging.Logger | None = None) -> dict:
    """Transfer a joint Universal encoder to a held-out subject on ``n_train``
    of its images (only its embeddings learn) and score its test images.
    ``transfer_options``: the ``universal`` section's ``transfer_*`` keys
    without the prefix (nrf.models.universal_options; ``epochs`` is read)."""
    log = log or logger
    model, info = transfer_universal(joint_checkpoint, target_prepared, features_path, n_train, draw, seed,
                                     train_options=train_options, transfer_options=transfer_options,
                                     device=resolve_device(device), log=log)
    summary = _score_model(model, target_prepared, features_path, out_csv, log, info["precision"])
    log.info("Universal transfer to %s on %d images (draw %d): %s", info["subject"], n_train, draw, summary)
    return summary


def embeddings_of(checkpoint, subjects) -> dict[str, np.ndarray]:
    """Voxel embeddings (n_voxels, E) of ``subjects`` in a Universal checkpoint."""
    ckpt = read_checkpoint(checkpoint)
    out = {}
    for s in subjects:
        key = f"embeddings.{s}"
        if key not in ckpt["state_dict"]:
            raise ValueError(f"{checkpoint} has no embeddings for {s}")
        out[s] = ckpt["state_dict"][key].numpy()
    return out
