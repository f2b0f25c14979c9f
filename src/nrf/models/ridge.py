"""Ridge baseline: the linear baseline's embedding -> every voxel, with each
voxel's penalty chosen by cross-validation (himalaya's ``RidgeCV``, one α per
voxel), the linear reference the field reports today.

The embedding is z-scored with training-set statistics (kept as buffers), so
one α grid suits any extractor; the intercept is the training mean.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class RidgeConfig:
    """embedding_dim : size of the image embedding; n_voxels : voxels predicted;
    alphas : penalties tried (log grid); cv : folds of the cross-validation."""

    embedding_dim: int
    n_voxels: int
    alphas: tuple = tuple(float(a) for a in np.logspace(-1, 6, 15))
    cv: int = 5

    def __post_init__(self):
        self.alphas = tuple(float(a) for a in self.alphas)
        if min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive, got {self.alphas}")
        if self.cv < 2:
            raise ValueError(f"cv needs at least 2 folds, got {self.cv}")

    def to_dict(self) -> dict:
        return asdict(self)


class RidgeEncoder(nn.Module):
    """responses = ((embedding - mean) / std) @ weight + bias: (n_img, D) -> (n_img, V)."""

    def __init__(self, config: RidgeConfig):
        super().__init__()
        self.config = config
        d, v = config.embedding_dim, config.n_voxels
        self.register_buffer("feature_mean", torch.zeros(d))
        self.register_buffer("feature_std", torch.ones(d))
        self.register_buffer("weight", torch.zeros(d, v))
        self.register_buffer("bias", torch.zeros(v))
        self.register_buffer("alpha", torch.zeros(v))

    def forward(self, features: Mapping[str, torch.Tensor] | torch.Tensor, coords_mm=None) -> torch.Tensor:
        emb = features["embedding"] if isinstance(features, Mapping) else features
        x = (emb.to(torch.float32) - self.feature_mean) / self.feature_std
        return x @ self.weight + self.bias


def fit_ridge(embedding: np.ndarray, responses: np.ndarray, config: RidgeConfig, *,
              log: logging.Logger | None = None) -> tuple[RidgeEncoder, list[dict]]:
    """Fit per-voxel cross-validated ridge (himalaya RidgeCV, numpy backend, float64).

    embedding : (n, D); responses : (n, V). Folds are contiguous (KFold
    without shuffling) over the training rows, which are in image-id order.
    Returns (model, [record]) with the counts of each chosen α.
    """
    from himalaya.ridge import RidgeCV  # himalaya: optional; only the ridge baseline fits with it

    log = log or logger
    x = np.asarray(embedding, dtype=np.float64)
    y = np.asarray(responses, dtype=np.float64)
    if len(x) < config.cv:
        raise ValueError(f"ridge with {config.cv}-fold cross-validation needs >= {config.cv} images, got {len(x)}")
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-8)
    model = RidgeCV(alphas=np.asarray(config.alphas), fit_intercept=True, cv=config.cv, force_cpu=True)
    model.fit((x - mean) / std, y)
    enc = RidgeEncoder(config)
    enc.feature_mean.copy_(torch.as_tensor(mean))
    enc.feature_std.copy_(torch.as_tensor(std))
    enc.weight.copy_(torch.as_tensor(np.asarray(model.coef_)).reshape(config.embedding_dim, config.n_voxels))
    enc.bias.copy_(torch.as_tensor(np.asarray(model.intercept_)).reshape(config.n_voxels))
    best = np.asarray(model.best_alphas_, dtype=np.float64)
    enc.alpha.copy_(torch.as_tensor(best))
    counts = {f"{a:g}": int(np.sum(np.isclose(best, a))) for a in config.alphas}
    record = {"alpha_counts": counts, "cv_score_mean": float(np.mean(model.cv_scores_))}
    log.info("ridge: %d images, %d voxels, alpha per voxel: %s", len(x), y.shape[1], counts)
    return enc.eval(), [record]
