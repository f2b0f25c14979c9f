"""Linear baseline: one linear map from the global image embedding to every
voxel (BrainDIVE's encoder, the paper's "Linear Regression" row)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import nn


@dataclass
class LinearConfig:
    """embedding_dim : size of the image embedding (paper: 512 CLIP);
    n_voxels : number of voxels predicted (one output each)."""

    embedding_dim: int
    n_voxels: int

    def to_dict(self) -> dict:
        return asdict(self)


class LinearEncoder(nn.Module):
    """responses = embedding @ W.T + b: (n_img, embedding_dim) -> (n_img, n_voxels)."""

    def __init__(self, config: LinearConfig, *, init_seed: int | None = None):
        super().__init__()
        self.config = config
        if init_seed is None:
            self.linear = nn.Linear(config.embedding_dim, config.n_voxels)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.linear = nn.Linear(config.embedding_dim, config.n_voxels)

    def forward(self, features: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """features : a mapping with ``embedding`` (n_img, embedding_dim), or
        that tensor itself -> (n_img, n_voxels)."""
        emb = features["embedding"] if isinstance(features, Mapping) else features
        return self.linear(emb.to(self.linear.weight.dtype))
