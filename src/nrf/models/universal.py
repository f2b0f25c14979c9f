"""The Universal Brain Encoder (Beliy et al., "The Wisdom of a Crowd of
Brains"; DESIGN.md §1): one learned embedding per voxel of every subject,
every other weight shared across subjects.

For image n and voxel v with embedding e_v (E values):

* Feature block: each of the L token grids (n, P, D_l) is projected to C
  channels (the values V_l, (n, P, C)) and to E channels plus a learned
  per-patch position (the keys K_l, (n, P, E)).
* Spatial attention: query q_v = W_q e_v; per layer, softmax over patches of
  q_v · K_l / sqrt(E) weights the values: s_l (C,).
* A 2-layer MLP per layer (C -> C -> C, GELU): f_l = MLP_l(s_l).
* Functional attention: the flattened f (L*C,) is weighted by W_f e_v (a
  learned (L*C) x E feature embedding applied to the voxel embedding) and
  summed to the scalar response (plus one shared bias).

Only ``embeddings[subject]`` (n_voxels, E) differs between subjects, so the
model holds any number of subjects with any voxel counts; ``subject`` picks
whose voxels :meth:`forward` predicts. Training (:func:`train_universal`)
draws ``batch_images`` (subject, image) pairs across the subjects' training
images and, for each, ``batch_voxels`` of that subject's voxels; Adam; the
NRF loss (nrf.training.loop.nrf_loss). Transfer (:func:`transfer_universal`)
learns only a new subject's embeddings.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class UniversalConfig:
    """Sizes of a Universal Brain Encoder.

    layer_keys    : cached token grids used as the L feature layers
    n_tokens, token_dim : shape of each grid (P, D)
    subjects      : subject names, in order; n_voxels : voxels of each
    channels      : C, channels of the projected features (paper: DINOv2 width)
    embedding_dim : E, size of each voxel embedding (paper 256)
    subject       : the subject :meth:`UniversalEncoder.forward` predicts
                    (default: the first)
    chunk_voxels  : voxels per chunk when predicting all of a subject's voxels
    """

    layer_keys: tuple
    n_tokens: int
    token_dim: int
    subjects: tuple
    n_voxels: tuple
    channels: int = 32
    embedding_dim: int = 256
    subject: str | None = None
    chunk_voxels: int = 2048

    def __post_init__(self):
        self.layer_keys = tuple(self.layer_keys)
        self.subjects = tuple(self.subjects)
        self.n_voxels = tuple(int(v) for v in self.n_voxels)
        if len(self.subjects) != len(self.n_voxels) or not self.subjects:
            raise ValueError(f"subjects {self.subjects} and n_voxels {self.n_voxels} must be non-empty and match")
        if self.subject is None:
            self.subject = self.subjects[0]
        if self.subject not in self.subjects:
            raise ValueError(f"subject {self.subject!r} is not one of {self.subjects}")

    def to_dict(self) -> dict:
        return asdict(self)


class UniversalEncoder(nn.Module):
    def __init__(self, config: UniversalConfig, *, init_seed: int | None = None):
        super().__init__()
        self.config = config
        c = config
        n_layers, e, ch = len(c.layer_keys), c.embedding_dim, c.channels
        with torch.random.fork_rng(devices=[]):
            if init_seed is not None:
                torch.manual_seed(init_seed)
            self.values = nn.ModuleList(nn.Linear(c.token_dim, ch) for _ in range(n_layers))
            self.keys = nn.ModuleList(nn.Linear(c.token_dim, e) for _ in range(n_layers))
            self.positions = nn.Parameter(0.02 * torch.randn(n_layers, c.n_tokens, e))
            self.query = nn.Linear(e, e)
            self.mlps = nn.ModuleList(
                nn.Sequential(nn.Linear(ch, ch), nn.GELU(), nn.Linear(ch, ch)) for _ in range(n_layers)
            )
            self.feature_embedding = nn.Parameter(torch.randn(n_layers * ch, e) / math.sqrt(e))
            self.bias = nn.Parameter(torch.zeros(()))
            self.embeddings = nn.ParameterDict(
                {s: nn.Parameter(torch.randn(n, e)) for s, n in zip(c.subjects, c.n_voxels)}
            )

    def add_subject(self, subject: str, n_voxels: int, *, seed: int = 0) -> None:
        """Give a new subject freshly initialised embeddings (transfer)."""
        if subject in self.embeddings:
            raise ValueError(f"{subject} already has embeddings in this model")
        gen = torch.Generator().manual_seed(seed)
        device = self.bias.device
        self.embeddings[subject] = nn.Parameter(torch.randn(n_voxels, self.config.embedding_dim, generator=gen).to(device))
        self.config = UniversalConfig(**{
            **self.config.to_dict(), "subjects": self.config.subjects + (subject,),
            "n_voxels": self.config.n_voxels + (int(n_voxels),), "subject": subject,
        })

    def select(self, subject: str) -> "UniversalEncoder":
        """Predict ``subject``'s voxels from now on (returns self)."""
        self.config = UniversalConfig(**{**self.config.to_dict(), "subject": subject})
        return self

    def image_code(self, features: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (n, L, P, C) and keys (n, L, P, E) of a batch of images."""
        values, keys = [], []
        for i, key in enumerate(self.config.layer_keys):
            tokens = features[key].to(self.positions.dtype)
            values.append(self.values[i](tokens))
            keys.append(self.keys[i](tokens) + self.positions[i])
        return torch.stack(values, 1), torch.stack(keys, 1)

    def respond(self, values: torch.Tensor, keys: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Responses of each image to its voxels.

        values (n, L, P, C), keys (n, L, P, E); emb (k, E) the same voxels
        for every image, or (n, k, E) one set per image -> (n, k)
        """
        q = self.query(emb)
        w_feat = emb @ self.feature_embedding.T  # (.., k, L*C)
        scale = 1.0 / math.sqrt(self.config.embedding_dim)
        eq = "ke,nlpe->nlkp" if emb.ndim == 2 else "nke,nlpe->nlkp"
        attn = torch.softmax(torch.einsum(eq, q, keys) * scale, dim=-1)
        pooled = torch.einsum("nlkp,nlpc->nlkc", attn, values)
        feats = torch.cat([mlp(pooled[:, i]) for i, mlp in enumerate(self.mlps)], dim=-1)  # (n, k, L*C)
        return (feats * w_feat).sum(-1) + self.bias

    def forward(self, features: Mapping[str, torch.Tensor], coords_mm=None, *, subject: str | None = None
                ) -> torch.Tensor:
        """features: the token grids (n, P, D) -> (n, n_voxels of ``subject``)."""
        emb = self.embeddings[subject or self.config.subject]
        values, keys = self.image_code(features)
        step = self.config.chunk_voxels
        return torch.cat([self.respond(values, keys, emb[j : j + step]) for j in range(0, len(emb), step)], dim=1)
