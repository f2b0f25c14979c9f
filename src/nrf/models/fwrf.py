"""fWRF, the feature-weighted receptive field (St-Yves & Naselaris 2018), as
the NRF paper's appendix runs it (DESIGN.md §1, "Baselines").

Each voxel sees the image through one Gaussian pooling field placed on every
layer's feature map, then a linear readout of the pooled features:

    x_k(n) = [ sum_p g_k(p) F_l(n, p, c) for c in top channels of layer l, for l ]
    response(n, v) = (x_{k_v}(n) - mean_{k_v}) / std_{k_v} . w_v + b_v

* Layers: the cached token grids named by ``layer_keys``, each a square grid
  (n, side², channels). On NSD these are AlexNet maps at 227²
  (nrf.features.alexnet); on the simulated default the filter bank's two grids.
* Channels: the ``n_top`` channels of each layer with the largest variance
  over the training images (all of them when a layer has fewer).
* Candidate fields: a ``n_centres`` x ``n_centres`` grid of centres spanning
  ``aperture`` of the image (image coordinates in [-0.5, 0.5]), and
  ``n_sizes`` Gaussian widths log-spaced over ``sizes`` (fractions of the
  image width): 3 x 3 x 2 = 18 candidates. Each field is normalised to sum 1
  on each layer's grid.
* Readout: ridge regression on z-scored pooled features, for every candidate
  and every λ in ``lambdas`` at once (one batched solve per λ, all voxels as
  right-hand sides, in chunks of voxels); each voxel keeps the (candidate, λ) with the lowest
  mean squared error on held-out training images, and its weights are refit on
  all training images with that choice.
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
class FWRFConfig:
    """Sizes of an fWRF.

    layer_keys  : feature arrays read as layers (token grids)
    layer_shape : per layer (n_tokens, channels) of the cached grid
    n_voxels    : voxels predicted
    n_top       : channels kept per layer, by training-set variance (paper 256)
    n_centres   : centres per side of the RF grid (paper 3)
    aperture    : extent of the centre grid, fraction of the image (paper 0.8)
    sizes       : (smallest, largest) Gaussian sd, fraction of the image (paper 0.15, 0.25)
    n_sizes     : log-spaced sizes between them (paper 2)
    lambdas     : ridge penalties tried per voxel (paper 1e4, 1e5)
    holdout_fraction : training images held out to choose candidate and λ
    """

    layer_keys: tuple
    layer_shape: tuple
    n_voxels: int
    n_top: int = 256
    n_centres: int = 3
    aperture: float = 0.8
    sizes: tuple = (0.15, 0.25)
    n_sizes: int = 2
    lambdas: tuple = (1e4, 1e5)
    holdout_fraction: float = 0.2

    def __post_init__(self):
        self.layer_keys = tuple(self.layer_keys)
        self.layer_shape = tuple(tuple(int(v) for v in s) for s in self.layer_shape)
        self.sizes = tuple(float(s) for s in self.sizes)
        self.lambdas = tuple(float(v) for v in self.lambdas)
        if len(self.layer_keys) != len(self.layer_shape):
            raise ValueError(f"layer_keys {self.layer_keys} and layer_shape {self.layer_shape} differ in length")
        for key, (n_tokens, _) in zip(self.layer_keys, self.layer_shape):
            side = round(n_tokens ** 0.5)
            if side * side != n_tokens:
                raise ValueError(f"fWRF needs square token grids; {key!r} has {n_tokens} tokens")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if min(self.lambdas) <= 0:
            raise ValueError(f"lambdas must be positive, got {self.lambdas}")

    @property
    def kept_channels(self) -> tuple[int, ...]:
        return tuple(min(self.n_top, c) for _, c in self.layer_shape)

    @property
    def feature_dim(self) -> int:
        return sum(self.kept_channels)

    @property
    def n_candidates(self) -> int:
        return self.n_centres ** 2 * self.n_sizes

    def to_dict(self) -> dict:
        return asdict(self)


def rf_candidates(n_centres: int = 3, aperture: float = 0.8, sizes=(0.15, 0.25), n_sizes: int = 2) -> np.ndarray:
    """Candidate receptive fields: (n_centres² * n_sizes, 3) rows (x, y, sd) in
    image units (the image spans [-0.5, 0.5]); sizes log-spaced, size-major."""
    centres = np.linspace(-aperture / 2, aperture / 2, n_centres) if n_centres > 1 else np.zeros(1)
    sds = np.geomspace(sizes[0], sizes[1], n_sizes)
    return np.array([(x, y, s) for s in sds for y in centres for x in centres], dtype=np.float64)


def pooling_fields(candidates: np.ndarray, side: int) -> np.ndarray:
    """Gaussian pooling weights of each candidate on a side x side grid whose
    cells tile the image: (n_candidates, side²), rows sum to 1, row-major
    over (y, x) like the token grids."""
    cell = (np.arange(side) + 0.5) / side - 0.5
    gy, gx = np.meshgrid(cell, cell, indexing="ij")
    x, y, sd = (candidates[:, i, None] for i in range(3))
    g = np.exp(-((gx.ravel() - x) ** 2 + (gy.ravel() - y) ** 2) / (2 * sd**2))
    return g / g.sum(axis=1, keepdims=True)


class FWRF(nn.Module):
    """(n_img features) -> (n_img, n_voxels); every learned array is a buffer
    (the model is fit in closed form, not by gradient)."""

    def __init__(self, config: FWRFConfig):
        super().__init__()
        self.config = config
        c = config
        cand = rf_candidates(c.n_centres, c.aperture, c.sizes, c.n_sizes)
        self.register_buffer("candidates", torch.tensor(cand, dtype=torch.float32))
        for i, ((n_tokens, _), k) in enumerate(zip(c.layer_shape, c.kept_channels)):
            side = round(n_tokens ** 0.5)
            self.register_buffer(f"fields_{i}", torch.tensor(pooling_fields(cand, side), dtype=torch.float32))
            self.register_buffer(f"channels_{i}", torch.zeros(k, dtype=torch.int64))
        d, v, k = c.feature_dim, c.n_voxels, c.n_candidates
        self.register_buffer("feature_mean", torch.zeros(k, d))
        self.register_buffer("feature_std", torch.ones(k, d))
        self.register_buffer("weight", torch.zeros(d, v))
        self.register_buffer("bias", torch.zeros(v))
        self.register_buffer("candidate", torch.zeros(v, dtype=torch.int64))
        self.register_buffer("lam", torch.zeros(v))

    def pooled(self, features: Mapping[str, torch.Tensor], *, standardise: bool = True) -> torch.Tensor:
        """Pooled top-channel features of every candidate: (n_img, n_candidates, feature_dim)."""
        parts = []
        for i, key in enumerate(self.config.layer_keys):
            tokens = features[key].to(torch.float32)
            tokens = tokens.index_select(2, getattr(self, f"channels_{i}"))
            parts.append(torch.einsum("kp,npc->nkc", getattr(self, f"fields_{i}"), tokens))
        x = torch.cat(parts, dim=2)
        return (x - self.feature_mean) / self.feature_std if standardise else x

    def forward(self, features: Mapping[str, torch.Tensor], coords_mm=None) -> torch.Tensor:
        """features: the layer grids (n_img, n_tokens, channels) -> (n_img, n_voxels)."""
        x = self.pooled(features)  # (n, K, D)
        out = x.new_empty(x.shape[0], self.config.n_voxels)
        for k in torch.unique(self.candidate).tolist():
            cols = torch.nonzero(self.candidate == k).squeeze(1)
            out[:, cols] = x[:, k] @ self.weight[:, cols] + self.bias[cols]
        return out


def ridge_operators(x: torch.Tensor, lambdas) -> torch.Tensor:
    """(xᵀx + λI)⁻¹ xᵀ for every candidate and λ (float64): (L, K, D, n).

    x : (K, n, D) centred features. Ridge weights of responses y (n, V) are
    then ``operator @ y`` (L, K, D, V) for all voxels at once.
    """
    xtx = x.transpose(1, 2) @ x  # (K, D, D)
    eye = torch.eye(x.shape[2], dtype=x.dtype)
    return torch.stack([torch.linalg.solve(xtx + lam * eye, x.transpose(1, 2)) for lam in lambdas])


def fit_fwrf(features: Mapping, responses: np.ndarray, config: FWRFConfig, *, seed: int = 0,
             chunk_voxels: int = 1024, log: logging.Logger | None = None) -> tuple[FWRF, list[dict]]:
    """Fit an fWRF on training images.

    features  : {layer_key: (n, n_tokens, channels)}; responses : (n, n_voxels)
    seed      : draws the held-out training images that choose candidate and λ
    chunk_voxels : voxels whose candidate x λ predictions are held at once
    Returns (model, history) with one history record: the held-out MSE of the
    choices, the counts per candidate and λ.
    """
    log = log or logger
    model = FWRF(config)
    y = torch.as_tensor(np.asarray(responses, dtype=np.float64))
    n = len(y)
    feats = {k: torch.as_tensor(np.asarray(features[k])).to(torch.float32) for k in config.layer_keys}
    for i, key in enumerate(config.layer_keys):
        if tuple(feats[key].shape[1:]) != config.layer_shape[i]:
            raise ValueError(f"features[{key!r}] is {tuple(feats[key].shape)}, the model expects (n, *{config.layer_shape[i]})")
        variance = feats[key].to(torch.float64).var(dim=(0, 1))  # per channel, over images and positions
        top = torch.argsort(variance, descending=True)[: config.kept_channels[i]]
        getattr(model, f"channels_{i}").copy_(torch.sort(top).values)

    x = model.pooled(feats, standardise=False).to(torch.float64)  # (n, K, D)
    holdout = np.random.default_rng(seed).permutation(n)[: max(1, round(config.holdout_fraction * n))]
    is_fit = torch.ones(n, dtype=torch.bool)
    is_fit[torch.as_tensor(holdout)] = False
    if is_fit.sum() < 2:
        raise ValueError(f"fWRF needs at least 3 training images, got {n}")

    def standardised(rows):
        mean, std = x[rows].mean(0), x[rows].std(0).clamp_min(1e-8)
        return mean, std, ((x - mean) / std).transpose(0, 1)  # (K, n, D)

    # choose (λ, candidate) per voxel on the held-out images, voxels in chunks
    mean, std, xs = standardised(is_fit)
    op = ridge_operators(xs[:, is_fit], config.lambdas)  # (L, K, D, n_fit)
    y_fit, y_hold = y[is_fit], y[~is_fit]
    y_mean = y_fit.mean(0)
    best_err = torch.empty(y.shape[1], dtype=torch.float64)
    best = torch.empty(y.shape[1], dtype=torch.int64)
    for j in range(0, y.shape[1], chunk_voxels):
        c = slice(j, j + chunk_voxels)
        w = op @ (y_fit[:, c] - y_mean[c])  # (L, K, D, v)
        pred = xs[:, ~is_fit] @ w + y_mean[c]  # (L, K, n_hold, v)
        err = ((pred - y_hold[:, c]) ** 2).mean(2).reshape(-1, w.shape[-1])  # (L*K, v)
        best_err[c], best[c] = err.min(0)
    lam_idx, cand_idx = best // config.n_candidates, best % config.n_candidates

    # refit on every training image with each voxel's choice
    mean, std, xs = standardised(torch.ones(n, dtype=torch.bool))
    op = ridge_operators(xs, config.lambdas)  # (L, K, D, n)
    y_mean = y.mean(0)
    weight = torch.empty(xs.shape[2], y.shape[1], dtype=torch.float64)
    for choice in torch.unique(best).tolist():  # at most L*K groups of voxels
        cols = torch.nonzero(best == choice).squeeze(1)
        l, k = divmod(choice, config.n_candidates)
        weight[:, cols] = op[l, k] @ (y[:, cols] - y_mean[cols])

    model.feature_mean.copy_(mean.to(torch.float32))
    model.feature_std.copy_(std.to(torch.float32))
    model.weight.copy_(weight.to(torch.float32))
    model.bias.copy_(y_mean.to(torch.float32))
    model.candidate.copy_(cand_idx)
    model.lam.copy_(torch.as_tensor(config.lambdas, dtype=torch.float64)[lam_idx].to(torch.float32))
    record = {
        "holdout_images": int(len(holdout)),
        "holdout_mse": float(best_err.mean()),
        "candidate_counts": torch.bincount(cand_idx, minlength=config.n_candidates).tolist(),
        "lambda_counts": torch.bincount(lam_idx, minlength=len(config.lambdas)).tolist(),
    }
    log.info("fWRF: %d images (%d held out), %d voxels, %d candidates x %d lambdas; %s",
             n, len(holdout), y.shape[1], config.n_candidates, len(config.lambdas), record)
    return model.eval(), [record]
