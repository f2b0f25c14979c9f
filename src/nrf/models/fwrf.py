"""fWRF, the feature-weighted receptive field (St-Yves & Naselaris 2018), as
the NRF paper's appendix runs it (DESIGN.md §1, "Baselines").

Each voxel sees the image through one Gaussian pooling field, defined in image
coordinates and placed on every layer's own feature grid, then a linear
readout of the pooled features:

    x_k(n) = [ sum_p g_k,l(p) F_l(n, p, c) for c in top channels of layer l, for l ]
    response(n, v) = (x_{k_v}(n) - mean_{k_v}) / std_{k_v} . w_v + b_v

* Layers: the cached layer maps named by ``layer_keys``, each a square grid
  (n, side², channels) at its own resolution. On NSD these are AlexNet's five
  conv layers (27², 27², 13², 13², 13²; nrf.features.alexnet); on the
  simulated default the filter bank's five grids (16², 8², 4², 8², 4²).
* Channels: the ``n_top`` channels of each layer with the largest variance
  over the training images (all of them when a layer has fewer).
* Candidate fields: a ``n_centres`` x ``n_centres`` grid of centres spanning
  ``aperture`` of the image (image coordinates in [-0.5, 0.5]), and
  ``n_sizes`` Gaussian widths log-spaced over ``sizes`` (fractions of the
  image width): 3 x 3 x 2 = 18 candidates. A field g_k,l is the same Gaussian
  evaluated at the cell centres of layer l's grid and normalised to sum 1
  there, so every layer is pooled over the same part of the image.
* Readout: ridge regression on z-scored pooled features, for every candidate
  and every λ in ``lambdas`` (one eigendecomposition of each candidate's Gram
  matrix serves every λ, so a wide grid costs little; voxels in chunks). Each
  voxel keeps the (candidate, λ) with the lowest mean squared error on
  held-out training images, and its weights are refit on all training images
  with that choice. The fit logs the fraction of voxels at each end of the λ
  grid: many at an end means the grid does not bracket their best penalty.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

#: images pooled at a time: bounds the float32 copy of a large map (AlexNet's conv1)
POOL_CHUNK = 256


@dataclass
class FWRFConfig:
    """Sizes of an fWRF.

    layer_keys  : feature arrays read as layers (square grids)
    layer_shape : per layer (n_tokens, channels) of the cached grid
    n_voxels    : voxels predicted
    n_top       : channels kept per layer, by training-set variance (paper 256)
    n_centres   : centres per side of the RF grid (paper 3)
    aperture    : extent of the centre grid, fraction of the image (paper 0.8)
    sizes       : (smallest, largest) Gaussian sd, fraction of the image (paper 0.15, 0.25)
    n_sizes     : log-spaced sizes between them (paper 2)
    lambdas     : ridge penalties tried per voxel (paper 1e4, 1e5), sorted ascending
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
        self.lambdas = tuple(sorted(float(v) for v in self.lambdas))
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

    @property
    def grid_sides(self) -> tuple[int, ...]:
        return tuple(round(n_tokens ** 0.5) for n_tokens, _ in self.layer_shape)

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
        for i, (side, k) in enumerate(zip(c.grid_sides, c.kept_channels)):
            self.register_buffer(f"fields_{i}", torch.tensor(pooling_fields(cand, side), dtype=torch.float32))
            self.register_buffer(f"channels_{i}", torch.zeros(k, dtype=torch.int64))
        d, v, k = c.feature_dim, c.n_voxels, c.n_candidates
        self.register_buffer("feature_mean", torch.zeros(k, d))
        self.register_buffer("feature_std", torch.ones(k, d))
        self.register_buffer("weight", torch.zeros(d, v))
        self.register_buffer("bias", torch.zeros(v))
        self.register_buffer("candidate", torch.zeros(v, dtype=torch.int64))
        self.register_buffer("lam", torch.zeros(v))

    def pooled(self, features: Mapping, *, standardise: bool = True) -> torch.Tensor:
        """Pooled top-channel features of every candidate: (n_img, n_candidates, feature_dim).

        Each layer is cast to float32 POOL_CHUNK images at a time, so a large
        float16 map is never copied whole."""
        parts = []
        for i, key in enumerate(self.config.layer_keys):
            grid = torch.as_tensor(features[key])  # numpy arrays are shared, not copied
            field, channels = getattr(self, f"fields_{i}"), getattr(self, f"channels_{i}")
            parts.append(torch.cat([
                torch.einsum("kp,npc->nkc", field, grid[j:j + POOL_CHUNK].to(field.device, torch.float32)
                             .index_select(2, channels))
                for j in range(0, max(len(grid), 1), POOL_CHUNK)
            ]))
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


def top_channels(grid, n_keep: int) -> torch.Tensor:
    """Indices (sorted) of the ``n_keep`` channels of a (n, tokens, channels)
    grid with the largest variance over images and positions; summed in
    float64 POOL_CHUNK images at a time."""
    grid = torch.as_tensor(grid)
    total = torch.zeros(grid.shape[2], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for j in range(0, len(grid), POOL_CHUNK):
        chunk = grid[j:j + POOL_CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 1))
        squares += (chunk ** 2).sum(dim=(0, 1))
    count = grid.shape[0] * grid.shape[1]
    variance = squares / count - (total / count) ** 2
    return torch.sort(torch.argsort(variance, descending=True)[:n_keep]).values


class RidgePaths:
    """Ridge solutions of every candidate's features at any λ, from one
    eigendecomposition of each Gram matrix: x = (K, n, D) centred features,
    xᵀx = Q diag(s) Qᵀ, so w(λ) = Q diag(1 / (s + λ)) Qᵀ xᵀ y."""

    def __init__(self, x: torch.Tensor):
        s, q = torch.linalg.eigh(x.transpose(1, 2) @ x)  # (K, D), (K, D, D)
        self.eigenvalues, self.basis, self.x = s.clamp_min(0), q, x

    def projected(self, y: torch.Tensor, k=slice(None)) -> torch.Tensor:
        """Qᵀ xᵀ y for responses y (n, v), of candidates ``k`` (all by default): (K, D, v)."""
        return self.basis[k].transpose(-1, -2) @ (self.x[k].transpose(-1, -2) @ y)

    def shrunk(self, projected: torch.Tensor, lam: float, k=slice(None)) -> torch.Tensor:
        """The ridge weights at one λ in the eigenbasis, diag(1 / (s + λ)) Qᵀ xᵀ y: (K, D, v)."""
        return projected / (self.eigenvalues[k] + lam)[..., None]

    def weights(self, projected: torch.Tensor, lam: float, k=slice(None)) -> torch.Tensor:
        """Ridge weights (K, D, v) at one λ from :meth:`projected` of the same candidates."""
        return self.basis[k] @ self.shrunk(projected, lam, k)


def lambda_ends(lam_idx: torch.Tensor, n_lambdas: int) -> dict:
    """Fractions of voxels at the smallest and the largest λ of the grid."""
    n = max(len(lam_idx), 1)
    return {"at_smallest_lambda": float((lam_idx == 0).sum()) / n,
            "at_largest_lambda": float((lam_idx == n_lambdas - 1).sum()) / n}


def fit_fwrf(features: Mapping, responses: np.ndarray, config: FWRFConfig, *, seed: int = 0,
             chunk_voxels: int = 1024, log: logging.Logger | None = None) -> tuple[FWRF, list[dict]]:
    """Fit an fWRF on training images.

    features  : {layer_key: (n, n_tokens, channels)}; responses : (n, n_voxels)
    seed      : draws the held-out training images that choose candidate and λ
    chunk_voxels : voxels whose held-out predictions are held at once
    Returns (model, history) with one history record: the held-out MSE of the
    choices, the counts per candidate and λ, the fractions of voxels at the
    grid's two ends.
    """
    log = log or logger
    model = FWRF(config)
    y = torch.as_tensor(np.asarray(responses, dtype=np.float64))
    n = len(y)
    for i, key in enumerate(config.layer_keys):
        shape = tuple(np.shape(features[key]))
        if shape[1:] != config.layer_shape[i] or shape[0] != n:
            raise ValueError(f"features[{key!r}] is {shape}, the model expects ({n}, *{config.layer_shape[i]})")
        getattr(model, f"channels_{i}").copy_(top_channels(features[key], config.kept_channels[i]))

    x = model.pooled(features, standardise=False).to(torch.float64)  # (n, K, D)
    holdout = np.random.default_rng(seed).permutation(n)[: max(1, round(config.holdout_fraction * n))]
    is_fit = torch.ones(n, dtype=torch.bool)
    is_fit[torch.as_tensor(holdout)] = False
    if is_fit.sum() < 2:
        raise ValueError(f"fWRF needs at least 3 training images, got {n}")

    def standardised(rows):
        mean, std = x[rows].mean(0), x[rows].std(0).clamp_min(1e-8)
        return mean, std, ((x - mean) / std).transpose(0, 1)  # (K, n, D)

    # held-out MSE of every (λ, candidate), voxels in chunks; each voxel's lowest
    mean, std, xs = standardised(is_fit)
    paths = RidgePaths(xs[:, is_fit])
    hold_rotated = xs[:, ~is_fit] @ paths.basis  # (K, n_hold, D): held-out features in each eigenbasis
    y_fit_mean = y[is_fit].mean(0)
    y_fit, y_hold = y[is_fit] - y_fit_mean, y[~is_fit] - y_fit_mean
    n_lambdas, n_candidates, n_voxels = len(config.lambdas), config.n_candidates, y.shape[1]
    mse = torch.empty(n_lambdas, n_candidates, n_voxels, dtype=torch.float64)
    for j in range(0, n_voxels, chunk_voxels):
        c = slice(j, j + chunk_voxels)
        projected = paths.projected(y_fit[:, c])  # (K, D, v)
        for li, lam in enumerate(config.lambdas):
            mse[li, :, c] = ((hold_rotated @ paths.shrunk(projected, lam) - y_hold[:, c]) ** 2).mean(1)
    best_mse, best = mse.reshape(n_lambdas * n_candidates, n_voxels).min(0)
    lam_idx, cand_idx = best // n_candidates, best % n_candidates

    # refit on every training image with each voxel's choice
    del paths, hold_rotated, xs  # before the refit's copies: AlexNet's pooled features are ~1 GB each
    mean, std, xs = standardised(torch.ones(n, dtype=torch.bool))
    paths = RidgePaths(xs)
    y_mean = y.mean(0)
    weight = torch.empty(xs.shape[2], y.shape[1], dtype=torch.float64)
    for pair in torch.unique(best).tolist():  # at most L*K groups of voxels
        group = torch.nonzero(best == pair).squeeze(1)
        li, k = divmod(pair, n_candidates)
        weight[:, group] = paths.weights(paths.projected(y[:, group] - y_mean[group], k), config.lambdas[li], k)

    model.feature_mean.copy_(mean.to(torch.float32))
    model.feature_std.copy_(std.to(torch.float32))
    model.weight.copy_(weight.to(torch.float32))
    model.bias.copy_(y_mean.to(torch.float32))
    model.candidate.copy_(cand_idx)
    model.lam.copy_(torch.as_tensor(config.lambdas, dtype=torch.float64)[lam_idx].to(torch.float32))
    record = {
        "holdout_images": int(len(holdout)),
        "holdout_mse": float(best_mse.mean()),
        "candidate_counts": torch.bincount(cand_idx, minlength=n_candidates).tolist(),
        "lambda_counts": torch.bincount(lam_idx, minlength=n_lambdas).tolist(),
        **lambda_ends(lam_idx, n_lambdas),
    }
    log.info("fWRF: %d images (%d held out), %d voxels, %d layers %s, %d candidates x %d lambdas "
             "[%g .. %g]; voxels at the smallest lambda %.1f%%, at the largest %.1f%%; %s",
             n, len(holdout), n_voxels, len(config.layer_keys), config.grid_sides, n_candidates, n_lambdas,
             config.lambdas[0], config.lambdas[-1], 100 * record["at_smallest_lambda"],
             100 * record["at_largest_lambda"], record)
    return model.eval(), [record]
