"""The Universal Brain Encoder (Beliy et al., "The Wisdom of a Crowd of
Brains"; DESIGN.md §1): one learned embedding per voxel of every subject,
every other weight shared across subjects. Two variants (``variant``):

``authors`` (the nsd preset) follows the authors' released model
(WeizmannVision/universal-brain-encoder-code, ``models/encoder_models.py``
``Encoder`` with ``layers_encoder.MapAttention_dynamic_pos`` and ``Mlp``) on
the cached token grids that stand in for their LoRA-tuned DINOv2 taps
(docs/FIDELITY.md). For image n and voxel v with embedding e_v (E values),
per tapped layer l:

* values  V_l = W_in,l LayerNorm_l(tokens_l)            (P, C)
* keys    K_l = W_k,l V_l + pos                          (P, E); ``pos`` is one
  (P, E) table shared by every layer
* query   q_l = W_q,l e_v                                (E)
* s_l = softmax_p(K_l q_l) · V_l  (unscaled: no 1/sqrt(E))        (C)
* f_l = h + MLP_l(h),  h = Dropout(LayerNorm'_l(s_l)),  MLP_l: C -> 4C -> C, GELU
* response = sum over the concatenated f (L*C) of f * (F e_v); no bias.

Voxel embeddings start at N(0, (0.1 / (2 sqrt(E)))^2) (0.003125 at E = 256),
F and ``pos`` at N(0, (1 / (2 sqrt(32)))^2) (their ``encoder_param.embed_dim``
= 32), the linear layers at PyTorch's defaults, as theirs.

``compact`` (the simulated CPU default) is the earlier, smaller reading: keys
from the raw tokens plus a per-layer position table, a shared query, scores
scaled by 1/sqrt(E), a plain 2-layer MLP (C -> C -> C) per layer, no
LayerNorm or dropout, one output bias and unit-variance voxel embeddings.

Only ``embeddings[subject]`` (n_voxels, E) differs between subjects, so the
model holds any number of subjects with any voxel counts; ``subject`` picks
whose voxels :meth:`forward` predicts. Training and transfer:
:mod:`nrf.training.universal` and :mod:`nrf.experiments.transfer`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import nn

logger = logging.getLogger(__name__)

VARIANTS = ("compact", "authors")
#: the authors' ``encoder_param.init``: voxel embeddings ~ N(0, (init / (2 sqrt(E)))^2)
AUTHORS_EMBEDDING_INIT = 0.1
#: the authors' ``encoder_param.embed_dim`` (32), which sizes only the initial
#: spread of the feature embedding and the position table: 1 / (2 sqrt(32))
AUTHORS_TABLE_STD = 1.0 / (2.0 * math.sqrt(32))
#: hidden width of the authors' residual MLP, in multiples of C
AUTHORS_MLP_RATIO = 4


def embedding_std(variant: str, embedding_dim: int) -> float:
    """Initial standard deviation of a voxel embedding (new or transferred)."""
    if variant == "authors":
        return AUTHORS_EMBEDDING_INIT / (2.0 * math.sqrt(embedding_dim))
    return 1.0


@dataclass
class UniversalConfig:
    """Sizes of a Universal Brain Encoder.

    layer_keys    : cached token grids used as the L feature layers
    n_tokens, token_dim : shape of each grid (P, D)
    subjects      : subject names, in order; n_voxels : voxels of each
    channels      : C, channels of the projected features (the authors' 128)
    embedding_dim : E, size of each voxel embedding (the authors' 256)
    variant       : "authors" (their released model) or "compact" (see the
                    module docstring)
    dropout       : dropout after each layer's LayerNorm (authors variant
                    only; theirs 0.25)
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
    variant: str = "compact"
    dropout: float = 0.25
    subject: str | None = None
    chunk_voxels: int = 2048

    def __post_init__(self):
        self.layer_keys = tuple(self.layer_keys)
        self.subjects = tuple(self.subjects)
        self.n_voxels = tuple(int(v) for v in self.n_voxels)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
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
            if c.variant == "authors":
                self._build_authors(n_layers, e, ch)
            else:
                self._build_compact(n_layers, e, ch)
            std = embedding_std(c.variant, e)
            self.embeddings = nn.ParameterDict(
                {s: nn.Parameter(std * torch.randn(n, e)) for s, n in zip(c.subjects, c.n_voxels)}
            )

    def _build_compact(self, n_layers: int, e: int, ch: int) -> None:
        c = self.config
        self.values = nn.ModuleList(nn.Linear(c.token_dim, ch) for _ in range(n_layers))
        self.keys = nn.ModuleList(nn.Linear(c.token_dim, e) for _ in range(n_layers))
        self.positions = nn.Parameter(0.02 * torch.randn(n_layers, c.n_tokens, e))
        self.query = nn.Linear(e, e)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(ch, ch), nn.GELU(), nn.Linear(ch, ch)) for _ in range(n_layers)
        )
        self.feature_embedding = nn.Parameter(torch.randn(n_layers * ch, e) / math.sqrt(e))
        self.bias = nn.Parameter(torch.zeros(()))

    def _build_authors(self, n_layers: int, e: int, ch: int) -> None:
        c = self.config
        hidden = AUTHORS_MLP_RATIO * ch
        self.input_norms = nn.ModuleList(nn.LayerNorm(c.token_dim) for _ in range(n_layers))  # their norm_in
        self.values = nn.ModuleList(nn.Linear(c.token_dim, ch) for _ in range(n_layers))  # their in_project
        self.keys = nn.ModuleList(nn.Linear(ch, e) for _ in range(n_layers))  # their map_att[l].project_x
        self.queries = nn.ModuleList(nn.Linear(e, e) for _ in range(n_layers))  # their map_att[l].project
        self.positions = nn.Parameter(AUTHORS_TABLE_STD * torch.randn(c.n_tokens, e))  # their pos_embed
        self.norms = nn.ModuleList(nn.LayerNorm(ch) for _ in range(n_layers))  # their norm
        self.dropout = nn.Dropout(c.dropout)  # their DO (one per layer there; dropout holds no weights)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(ch, hidden), nn.GELU(), nn.Linear(hidden, ch)) for _ in range(n_layers)
        )
        # their feat_embed (E, L*C), stored transposed like the compact variant's
        self.feature_embedding = nn.Parameter(AUTHORS_TABLE_STD * torch.randn(n_layers * ch, e))

    def add_subject(self, subject: str, n_voxels: int, *, seed: int = 0) -> None:
        """Give a new subject freshly initialised embeddings (transfer; the
        authors re-draw ``voxel_embed`` with its initial spread)."""
        if subject in self.embeddings:
            raise ValueError(f"{subject} already has embeddings in this model")
        gen = torch.Generator().manual_seed(seed)
        device = self.feature_embedding.device
        std = embedding_std(self.config.variant, self.config.embedding_dim)
        self.embeddings[subject] = nn.Parameter(
            (std * torch.randn(n_voxels, self.config.embedding_dim, generator=gen)).to(device))
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
        authors = self.config.variant == "authors"
        for i, key in enumerate(self.config.layer_keys):
            tokens = features[key].to(self.positions.dtype)
            if authors:  # keys from the projected features, one position table for every layer
                v = self.values[i](self.input_norms[i](tokens))
                values.append(v)
                keys.append(self.keys[i](v) + self.positions)
            else:
                values.append(self.values[i](tokens))
                keys.append(self.keys[i](tokens) + self.positions[i])
        return torch.stack(values, 1), torch.stack(keys, 1)

    def respond(self, values: torch.Tensor, keys: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Responses of each image to its voxels.

        values (n, L, P, C), keys (n, L, P, E); emb (k, E) the same voxels
        for every image, or (n, k, E) one set per image -> (n, k)
        """
        w_feat = emb @ self.feature_embedding.T  # (.., k, L*C)
        if self.config.variant == "authors":
            q = torch.stack([proj(emb) for proj in self.queries], dim=-3)  # (L, k, E) or (n, L, k, E)
            eq = "lke,nlpe->nlkp" if emb.ndim == 2 else "nlke,nlpe->nlkp"
            attn = torch.softmax(torch.einsum(eq, q, keys), dim=-1)  # unscaled, as theirs
            pooled = torch.einsum("nlkp,nlpc->nlkc", attn, values)
            feats = []
            for i, mlp in enumerate(self.mlps):
                h = self.dropout(self.norms[i](pooled[:, i]))
                feats.append(h + mlp(h))
            return (torch.cat(feats, dim=-1) * w_feat).sum(-1)  # no output bias
        q = self.query(emb)
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
