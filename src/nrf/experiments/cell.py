"""One cell of the few-image experiments: (subject, N training images, draw).

Every experiment that trains on N of a subject's images (adaptation, Tables
2-3 and 7-9; the probes, Figure 4; Table 4; the Universal transfer curve)
takes its images from :func:`draw_rows`, its schedule from :func:`schedule`,
finetunes a base NRF with :func:`finetune` and scores with :func:`score`, so
one method at one (subject, N, draw) is one number wherever it is shown.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nrf.data.prepared import load_prepared
from nrf.features.cache import read_features
from nrf.metrics import mse_per_voxel, pearson_per_voxel, summarise
from nrf.training.encoders import load_encoder
from nrf.training.loop import EncodingSplit, TrainConfig
from nrf.training.registry import get_kind


def draw_rows(n_total: int, n: int, seed: int, draw: int) -> np.ndarray:
    """Rows of the training images of one draw, ascending; the same for every method.

    Each draw is its own seeded permutation (seed, draw), so draws differ and
    a rerun gives the same images.
    """
    if not 1 <= n <= n_total:
        raise ValueError(f"{n} training images asked for, {n_total} exist")
    rng = np.random.default_rng([int(seed), int(draw)])
    return np.sort(rng.permutation(n_total)[:n])


def schedule(protocol: str, n_train: int, train: dict, steps: int, min_steps: int = 0) -> dict:
    """TrainConfig fields for one small training under ``protocol``.

    paper : validate on the test images every epoch (ceil(N / batch) steps),
            patience 5, best state kept, at most ``steps`` steps, no early
            stop before ``min_steps`` (lowered to ``steps``)
    clean : exactly ``steps`` steps, no validation
    """
    if protocol == "paper":
        epoch = max(1, math.ceil(n_train / train["batch_images"]))
        return dict(train, eval_every=epoch, patience=train["patience"], min_steps=min(int(min_steps), steps),
                    max_steps=steps)
    return dict(train, eval_every=steps, patience=None, min_steps=0, max_steps=steps)


class Cell:
    """The data of one (target, N, draw) cell, read once and shared by every method.

    train : EncodingSplit of the N drawn training images (all feature keys)
    test  : EncodingSplit of the target's test images
    coords : (n_voxels, 3) the target's MNI coordinates
    val   : the validation split the schedule uses (paper: test; clean: None)
    """

    def __init__(self, prepared_path, features_path, n_train: int, draw: int, *, seed: int, protocol: str):
        prep = load_prepared(prepared_path, splits=("train", "test"))
        self.subject = prep.subject
        self.coords = prep.coords
        self.rows = draw_rows(prep.train.n_images, n_train, seed, draw)
        self.train_ids = prep.train.image_ids[self.rows]
        self.test_ids = prep.test.image_ids
        keys = ("tokens_shallow", "tokens_deep", "embedding")
        self.train = EncodingSplit(read_features(features_path, self.train_ids, keys), prep.train.responses[self.rows])
        self.test = EncodingSplit(read_features(features_path, self.test_ids, keys), prep.test.responses)
        self.val = self.test if protocol == "paper" else None
        self.protocol = protocol

    @property
    def n_voxels(self) -> int:
        return self.coords.shape[0]


def finetune(base_checkpoint, train: EncodingSplit, val: EncodingSplit | None, coords, config: TrainConfig, log,
             source: str) -> tuple[torch.nn.Module, list[dict]]:
    """A base NRF finetuned end to end on (train, val) at ``coords``: the target's
    own MNI coordinates (adaptation, Table 4) or those a probe chose (Figure 4)."""
    model, ckpt = load_encoder(base_checkpoint, config.device)
    if ckpt["kind"] != "nrf":
        raise ValueError(f"{base_checkpoint}: a {ckpt['kind']} checkpoint, only NRFs are finetuned")
    return get_kind("nrf").fit(train, val, coords, config, model_options={}, model=model, log=log, source=source)


def score(pred, responses) -> dict:
    """Median voxel r (undefined counted as 0), median MSE, and the per-voxel r."""
    r = pearson_per_voxel(pred, responses)
    s = summarise(r, mse_per_voxel(pred, responses))
    return {"pearson": s["median_r"], "mse": float(np.median(mse_per_voxel(pred, responses))), "r": r}
