"""Training the Universal Brain Encoder on one subject or several jointly
(:func:`train_universal`). The model itself is :mod:`nrf.models.universal`;
the shared loop is :func:`nrf.training.loop.fit_steps`; the joint checkpoint
and transfer are :mod:`nrf.experiments.transfer`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from nrf.metrics import pearson_per_voxel
from nrf.models.universal import UniversalConfig, UniversalEncoder
from nrf.training.loop import EncodingSplit, TrainConfig, fit_steps, nrf_loss, predict

logger = logging.getLogger(__name__)

# -- one or several subjects --------------------------------------------------------------------
@dataclass
class SubjectData:
    """One subject's training (and optional validation) images."""

    name: str
    train: EncodingSplit
    val: EncodingSplit | None = None


def _validate(model: UniversalEncoder, subjects: Sequence[SubjectData], config: TrainConfig) -> float | None:
    scores = []
    for s in subjects:
        if s.val is None:
            continue
        model.select(s.name)
        pred = predict(model, s.val.features, chunk_images=config.eval_chunk_images, device=config.device,
                       precision=config.precision)
        scores.append(float(np.median(np.nan_to_num(pearson_per_voxel(pred, s.val.responses)))))
    return float(np.mean(scores)) if scores else None


def train_universal(
    subjects: Sequence[SubjectData],
    config: TrainConfig,
    *,
    model_options: dict | None = None,
    model: UniversalEncoder | None = None,
    trainable: str = "all",
    log: logging.Logger | None = None,
    source: str = "the training data",
) -> tuple[UniversalEncoder, list[dict]]:
    """Train a Universal encoder on one or more subjects (jointly).

    Each step draws ``config.batch_images`` (subject, image) pairs uniformly
    over all subjects' training images and, per pair,
    min(``config.batch_voxels``, fewest voxels of any subject) of that
    subject's voxels; Adam at ``config.lr``; loss nrf_loss(alpha). Every
    ``eval_every`` steps the mean over subjects of the validation median r is
    recorded; with ``patience`` the best state is kept (early stopping),
    otherwise ``max_steps`` run. ``trainable="embeddings"`` updates only the
    voxel embeddings (transfer). A new model needs ``model_options`` (channels,
    embedding_dim, layer_keys).
    Returns (model selected to the first subject, history).
    """
    log = log or logger
    if trainable not in ("all", "embeddings"):
        raise ValueError(f"trainable must be 'all' or 'embeddings', got {trainable!r}")
    names = [s.name for s in subjects]
    has_val = any(s.val is not None for s in subjects)
    if config.patience is not None and not has_val:
        raise ValueError("early stopping needs validation images: pass val or set patience=None")
    device = torch.device(config.device)
    if model is None:
        opts = dict(model_options or {})
        keys = tuple(opts.pop("layer_keys", ("tokens_shallow", "tokens_deep")))
        first = subjects[0].train.features[keys[0]]
        model = UniversalEncoder(UniversalConfig(
            layer_keys=keys, n_tokens=int(first.shape[1]), token_dim=int(first.shape[2]), subjects=tuple(names),
            n_voxels=tuple(s.train.responses.shape[1] for s in subjects), **opts,
        ), init_seed=config.seed)
    for s in subjects:
        if s.name not in model.embeddings:
            raise ValueError(f"the model has no embeddings for {s.name}; it holds {model.config.subjects}")
        if model.embeddings[s.name].shape[0] != s.train.responses.shape[1]:
            raise ValueError(f"{s.name}: {s.train.responses.shape[1]} voxels, the model has "
                             f"{model.embeddings[s.name].shape[0]}")
    model.to(device).train()
    params = [model.embeddings[n] for n in names] if trainable == "embeddings" else list(model.parameters())
    trained = {id(p) for p in params}
    for p in model.parameters():  # frozen weights need no gradients
        p.requires_grad_(id(p) in trained)
    opt = torch.optim.Adam(params, lr=config.lr)

    # every subject's training images as one table of (subject, row) pairs
    keys = model.config.layer_keys
    feats = {k: torch.cat([torch.as_tensor(np.asarray(s.train.features[k])) for s in subjects]) for k in keys}
    responses = [torch.as_tensor(np.asarray(s.train.responses, dtype=np.float32)) for s in subjects]
    owner = torch.cat([torch.full((len(r),), i) for i, r in enumerate(responses)])
    local = torch.cat([torch.arange(len(r)) for r in responses])
    n_pairs = len(owner)
    n_img = min(config.batch_images, n_pairs)
    n_vox = min([config.batch_voxels] + [r.shape[1] for r in responses])
    gen = torch.Generator().manual_seed(config.seed)
    log.info("Universal: subjects %s, %d training images, %d steps max, batch %d x %d, trainable=%s",
             names, n_pairs, config.max_steps, n_img, n_vox, trainable)

    def step_loss(step: int) -> torch.Tensor:
        pairs = torch.randperm(n_pairs, generator=gen)[:n_img]
        emb_rows, targets = [], []
        for p in pairs.tolist():
            s = int(owner[p])
            cols = torch.randperm(responses[s].shape[1], generator=gen)[:n_vox]
            emb_rows.append((s, cols))
            targets.append(responses[s][local[p], cols])
        tables = [model.embeddings[n] for n in names]
        emb = torch.stack([tables[s][cols.to(device)] for s, cols in emb_rows])  # (n, k, E)
        values, keys_ = model.image_code({k: v[pairs].to(device) for k, v in feats.items()})
        return nrf_loss(model.respond(values, keys_, emb), torch.stack(targets).to(device), config.alpha)

    def validate() -> dict | None:
        r = _validate(model, subjects, config) if has_val else None
        return None if r is None else {"median_r": r}  # mean over subjects of the val median r

    history = fit_steps(model, step_loss, opt, validate, config, steps_per_epoch=math.ceil(n_pairs / n_img),
                        name="Universal", log=log, source=source,
                        keep_best=None if config.patience is None else "val_median_r")
    return model.select(names[0]).eval(), history
