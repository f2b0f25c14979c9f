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
NRF loss (nrf.training.nrf_loss). Transfer (:func:`transfer_universal`)
learns only a new subject's embeddings.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nrf.metrics import pearson_per_voxel
from nrf.training import EncodingSplit, TrainConfig, fit_steps, nrf_loss, predict

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


# -- training --------------------------------------------------------------------
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


def transfer_universal(joint_checkpoint, target_prepared, features, n_train: int | None, seed: int, *,
                       train_options: dict | None = None, device: str = "cpu",
                       log: logging.Logger | None = None) -> tuple[UniversalEncoder, dict]:
    """Transfer a jointly trained Universal encoder to a held-out subject:
    only the target's voxel embeddings are learned, from a seeded subset of
    ``n_train`` of its training images (nrf.encoding.subset_indices: the same
    nested draws as NRF's adaptation), for ``max_steps`` steps (no early
    stopping). ``features`` is the feature cache path.

    Returns (model selected to the target subject, info: subject,
    train_image_ids, history).
    """
    from nrf.data.prepared import load_prepared
    from nrf.encoding import load_encoder, subset_indices
    from nrf.features.cache import read_features

    model, ckpt = load_encoder(joint_checkpoint, device)
    if ckpt["kind"] != "universal":
        raise ValueError(f"{joint_checkpoint} holds a {ckpt['kind']} model, not a Universal encoder")
    prep = load_prepared(target_prepared, splits=("train",))
    if prep.subject in model.config.subjects:
        raise ValueError(f"{prep.subject} was among the subjects {joint_checkpoint} was trained on; "
                         f"transfer needs a held-out subject")
    rows = subset_indices(prep.train.n_images, n_train, seed)
    ids = prep.train.image_ids[rows]
    train = EncodingSplit(read_features(features, ids, model.config.layer_keys), prep.train.responses[rows])
    options = {**(train_options or {}), "patience": None, "seed": seed, "device": device}
    model.add_subject(prep.subject, prep.n_voxels, seed=seed)
    model, history = train_universal([SubjectData(prep.subject, train)], TrainConfig(**options), model=model,
                                     trainable="embeddings", log=log, source=str(target_prepared))
    return model, {"subject": prep.subject, "train_image_ids": ids, "history": history}
