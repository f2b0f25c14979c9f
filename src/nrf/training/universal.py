"""Training the Universal Brain Encoder on one subject or several jointly
(:func:`train_universal`). The model itself is :mod:`nrf.models.universal`;
the shared loop is :func:`nrf.training.loop.fit_steps`; the joint checkpoint
and transfer are :mod:`nrf.experiments.transfer`.

The model's ``variant`` picks the recipe. ``authors`` follows
``train/train_encoder.py`` and ``utils/train_utils_enc.py`` of
WeizmannVision/universal-brain-encoder-code: loss MSE - alpha * cos
(:func:`authors_loss`), Adam with ``amsgrad``, and a ReduceLROnPlateau
schedule on the validation 75th-percentile voxel r (factor 0.1, ``patience``
evaluations, an absolute threshold of 0.003), stopping once the rate is below
1e-7; the state with the best validation 75th-percentile r is kept.
``compact`` keeps the earlier recipe: nrf_loss ((1 - alpha) * MSE - alpha *
cos), plain Adam at a constant rate, early stopping on the validation median r.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nrf.metrics import pearson_per_voxel
from nrf.models.universal import UniversalConfig, UniversalEncoder
from nrf.training.loop import EncodingSplit, TrainConfig, fit_steps, fused_supported, nrf_loss, predict

logger = logging.getLogger(__name__)

#: the authors' scheduler: ReduceLROnPlateau(mode='max', factor=0.1,
#: threshold=0.003, threshold_mode='abs') stepped once per epoch on the
#: validation 75th-percentile r; their patience (4) is ``patience`` here
AUTHORS_PLATEAU = {"mode": "max", "factor": 0.1, "threshold": 0.003, "threshold_mode": "abs"}
#: they stop training once the learning rate falls below this
AUTHORS_MIN_LR = 1e-7
#: the percentile of voxel r their validation keeps the best state by
AUTHORS_VAL_PERCENTILE = 75


def authors_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """The authors' loss: MSE - alpha * mean over images of the cosine
    similarity across voxels (``F.mse_loss(p, t) - 0.1 * mean(cos(p, t))``).

    pred, target : (n_img, n_vox)
    """
    return F.mse_loss(pred, target) - alpha * F.cosine_similarity(pred, target, dim=1).mean()


def universal_loss(variant: str):
    """The loss of a variant: :func:`authors_loss` or nrf_loss."""
    return authors_loss if variant == "authors" else nrf_loss


# -- one or several subjects --------------------------------------------------------------------
@dataclass
class SubjectData:
    """One subject's training (and optional validation) images."""

    name: str
    train: EncodingSplit
    val: EncodingSplit | None = None


def _validate(model: UniversalEncoder, subjects: Sequence[SubjectData], config: TrainConfig) -> dict | None:
    """Mean over subjects (with validation images) of the median and the 75th
    percentile of the voxels' r (undefined r counted as 0, as the authors)."""
    medians, p75s = [], []
    for s in subjects:
        if s.val is None:
            continue
        model.select(s.name)
        pred = predict(model, s.val.features, chunk_images=config.eval_chunk_images, device=config.device,
                       precision=config.precision)
        r = np.nan_to_num(pearson_per_voxel(pred, s.val.responses))
        medians.append(float(np.median(r)))
        p75s.append(float(np.percentile(r, AUTHORS_VAL_PERCENTILE)))
    if not medians:
        return None
    return {"median_r": float(np.mean(medians)), "r_p75": float(np.mean(p75s))}


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
    subject's voxels. Every ``eval_every`` steps the mean over subjects of the
    validation median r and 75th-percentile r are recorded.

    compact : Adam at ``config.lr``; loss nrf_loss(alpha); with ``patience``
              early stopping on the median r, the best state kept; otherwise
              ``max_steps`` run and the final state is kept.
    authors : Adam(amsgrad) from ``config.lr``; loss :func:`authors_loss`;
              with validation images the state at the best 75th-percentile
              r is kept, and with ``patience`` the learning rate is cut
              tenfold after ``patience`` + 1 evaluations without a gain of
              0.003 (their ReduceLROnPlateau) and training stops once it is
              below 1e-7 (or after ``max_steps``). ``patience=None``: a
              constant rate (their transfer).

    ``trainable="embeddings"`` updates only the voxel embeddings (transfer).
    A new model needs ``model_options`` (channels, embedding_dim, variant,
    dropout, layer_keys).
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
    authors = model.config.variant == "authors"
    # fused on CUDA, as NRF's AdamW: fit_steps then checks the loss on the device, no sync per step
    opt = torch.optim.Adam(params, lr=config.lr, amsgrad=authors, fused=True if fused_supported(device) else None)
    loss_fn = universal_loss(model.config.variant)
    plateau = None
    if authors and config.patience is not None:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=config.patience, **AUTHORS_PLATEAU)

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
    log.info("Universal (%s): subjects %s, %d training images, %d steps max, batch %d x %d, trainable=%s",
             model.config.variant, names, n_pairs, config.max_steps, n_img, n_vox, trainable)

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
        return loss_fn(model.respond(values, keys_, emb), torch.stack(targets).to(device), config.alpha)

    def validate() -> dict | None:
        scores = _validate(model, subjects, config) if has_val else None
        if scores is not None and plateau is not None:
            plateau.step(scores["r_p75"])  # after each epoch's validation, as theirs
        return scores  # means over subjects of the val median r and 75th-percentile r

    def below_min_lr(record: dict) -> bool:
        record["lr"] = opt.param_groups[0]["lr"]
        return record["lr"] < AUTHORS_MIN_LR

    if authors:
        history = fit_steps(model, step_loss, opt, validate, replace(config, patience=None),
                            steps_per_epoch=math.ceil(n_pairs / n_img), name="Universal", log=log, source=source,
                            keep_best="val_r_p75" if has_val else None,
                            stop=below_min_lr if plateau is not None else None)
    else:
        history = fit_steps(model, step_loss, opt, validate, config, steps_per_epoch=math.ceil(n_pairs / n_img),
                            name="Universal", log=log, source=source,
                            keep_best=None if config.patience is None else "val_median_r")
    return model.select(names[0]).eval(), history
