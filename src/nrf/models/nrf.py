"""The Neural Response Function: Φ(image, x) -> response at MNI coordinate x.

Two blocks (DESIGN.md §1):

* Image block G. Each of two token grids (a shallow and a deep layer of a
  frozen network, cached on disk) goes through a :class:`TokenMerger`
  (Linear per token -> flatten -> Linear, no activation); the two merged
  vectors are concatenated and L2-normalised together, then joined with the
  network's global embedding: G(M), of size ``2 * merger_dim + embedding_dim``.
* Predictor P. An MLP of ``depth`` linear layers (hidden width ``width``, ReLU
  between, scalar output) on [G(M), γ(x)], where γ are Gaussian Fourier
  features of the coordinate normalised to [0, 1] in the MNI152 1 mm box.

The first layer of P is linear in the concatenation, W [g; c] + b =
W_g g + W_c c + b, so :meth:`NRF.forward` computes the image part once per
image and the coordinate part once per voxel and adds them by broadcasting
(exact, and much cheaper than building every (image, voxel) input).
:meth:`NRF.forward_concat` is the literal per-pair concatenation, kept as a
reference for tests. Both use the same single ``nn.Linear`` for the first
layer, so a checkpoint does not depend on which route computed it.

The layout follows the authors' released code (haomiao8/NRF): merger token
width 128 and 512-d per layer (the paper's text says 256), B ~ N(0, 32²) of
shape 3 x 32 with γ = [sin(xB), cos(xB)] (no 2π), CLIP embedding joined
after (not inside) the L2 normalisation.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: MNI152 1 mm box: lower corner (mm) and extent (mm) per axis. Coordinates are
#: normalised as (x - lower) / extent, i.e. ((x+92)/182, (y+126)/218, (z+72)/182).
MNI_BOX = ((-92.0, -126.0, -72.0), (182.0, 218.0, 182.0))

#: which parameters a finetuning run may update (TrainConfig.trainable)
TRAINABLE = ("all", "image_block", "predictor")


@dataclass
class NRFConfig:
    """Sizes of an NRF. The first three come from the cached features.

    token_dim, n_tokens : shape of each token grid (paper: 768, 196)
    embedding_dim       : size of the global image embedding (paper: 512)
    merger_token_dim    : per-token projection of the merger (code: 128)
    merger_dim          : output of each merger (code: 512; paper text: 256)
    fourier_features    : m, columns of B; γ(x) has 2m entries (paper: 32)
    fourier_scale       : standard deviation of B's entries (paper: 32, for
                          coordinates in [0, 1])
    coord_box           : (lower corner mm, extent mm) normalising coordinates
    depth               : number of linear layers in the predictor (paper: 8)
    width               : hidden width of the predictor (paper: 4096)
    fourier_seed        : seed that fixes B
    """

    token_dim: int
    n_tokens: int
    embedding_dim: int
    merger_token_dim: int = 128
    merger_dim: int = 512
    fourier_features: int = 32
    fourier_scale: float = 32.0
    coord_box: tuple = field(default=MNI_BOX)
    depth: int = 8
    width: int = 4096
    fourier_seed: int = 0

    def __post_init__(self):
        lower, extent = (tuple(float(v) for v in part) for part in self.coord_box)
        if len(lower) != 3 or len(extent) != 3 or min(extent) <= 0:
            raise ValueError(
                f"coord_box must be ((x0, y0, z0), (dx, dy, dz)) in mm with positive "
                f"extents, got {self.coord_box!r}"
            )
        self.coord_box = (lower, extent)
        if self.depth < 2:
            raise ValueError(f"depth={self.depth}: the predictor needs at least 2 linear layers")

    @property
    def image_dim(self) -> int:
        """Size of G(M): two merged grids plus the embedding."""
        return 2 * self.merger_dim + self.embedding_dim

    @property
    def coord_dim(self) -> int:
        """Size of γ(x)."""
        return 2 * self.fourier_features

    def to_dict(self) -> dict:
        d = asdict(self)
        d["coord_box"] = [list(self.coord_box[0]), list(self.coord_box[1])]
        return d


def normalise_coords(coords_mm: torch.Tensor, coord_box=MNI_BOX) -> torch.Tensor:
    """MNI millimetres (..., 3) -> box-normalised coordinates in [0, 1] (..., 3)."""
    lower = torch.as_tensor(coord_box[0], dtype=coords_mm.dtype, device=coords_mm.device)
    extent = torch.as_tensor(coord_box[1], dtype=coords_mm.dtype, device=coords_mm.device)
    return (coords_mm - lower) / extent


class FourierFeatures(nn.Module):
    """γ(x) = [sin(x B), cos(x B)] with B ~ N(0, scale²) of shape (3, m).

    B is drawn once from ``numpy.random.default_rng(seed)`` and stored as a
    buffer (saved in the state_dict, never trained).
    """

    def __init__(self, n_features: int = 32, scale: float = 32.0, seed: int = 0, in_dim: int = 3):
        super().__init__()
        b = np.random.default_rng(seed).normal(0.0, scale, size=(in_dim, n_features))
        self.register_buffer("B", torch.as_tensor(b, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (..., 3) normalised coordinates -> (..., 2m)."""
        proj = x.to(self.B.dtype) @ self.B
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def code_wavelengths_mm(n_features: int, scale: float, seed: int, coord_box=MNI_BOX) -> np.ndarray:
    """The wavelength in mm of each of γ(x)'s sinusoids (one per column b of B): the phase b·x
    of a box-normalised coordinate changes by 2π over 2π / |b / extent| mm. The NRF's MLP adds
    harmonics, but a code whose wavelengths all exceed a structure's length scale gives the
    model little to hold that structure with."""
    b = FourierFeatures(n_features, scale, seed).B.double().numpy()  # (3, m)
    extent = np.asarray(coord_box[1], dtype=np.float64)[:, None]
    return 2 * np.pi / np.linalg.norm(b / extent, axis=0)


class TokenMerger(nn.Module):
    """Linear(token_dim -> merger_token_dim) per token -> flatten ->
    Linear(n_tokens * merger_token_dim -> merger_dim); no activation."""

    def __init__(self, token_dim: int, n_tokens: int, merger_token_dim: int, merger_dim: int):
        super().__init__()
        self.n_tokens = n_tokens
        self.per_token = nn.Linear(token_dim, merger_token_dim)
        self.fuse = nn.Linear(n_tokens * merger_token_dim, merger_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens : (n_img, n_tokens, token_dim) -> (n_img, merger_dim)."""
        if tokens.ndim != 3 or tokens.shape[1] != self.n_tokens:
            raise ValueError(
                f"expected tokens (n_img, {self.n_tokens}, token_dim), got {tuple(tokens.shape)}"
            )
        x = self.per_token(tokens.to(self.per_token.weight.dtype))
        return self.fuse(torch.flatten(x, start_dim=1))


def _full_precision(like: torch.Tensor):
    """Switch autocast off on ``like``'s device (float32 math inside); the meta
    device (FLOP counting, shapes) has no autocast."""
    if like.device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=like.device.type, enabled=False)


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Run a block with torch's CPU generator seeded, restoring it after."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class NRF(nn.Module):
    """Φ(features, coords_mm) -> (n_img, n_vox) responses.

    ``features`` is a mapping with
        tokens_shallow, tokens_deep : (n_img, n_tokens, token_dim) (float16 ok)
        embedding                   : (n_img, embedding_dim)
    and ``coords_mm`` is (n_vox, 3) MNI millimetres.

    ``init_seed`` makes the initial weights a function of the seed alone
    (torch's global generator is left as it was).
    """

    def __init__(self, config: NRFConfig, *, init_seed: int | None = None):
        super().__init__()
        self.config = config
        c = config
        with _seeded(init_seed):
            self.merger_shallow = TokenMerger(c.token_dim, c.n_tokens, c.merger_token_dim, c.merger_dim)
            self.merger_deep = TokenMerger(c.token_dim, c.n_tokens, c.merger_token_dim, c.merger_dim)
            self.fourier = FourierFeatures(c.fourier_features, c.fourier_scale, c.fourier_seed)
            dims = [c.image_dim + c.coord_dim] + [c.width] * (c.depth - 1) + [1]
            self.predictor = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        # the MNI box on the model's device, so normalising needs no host-to-device copy (which
        # would wait for the GPU at every step); not saved: it is config.coord_box
        lower, extent = (torch.tensor(part, dtype=torch.float32) for part in c.coord_box)
        self.register_buffer("box_lower", lower, persistent=False)
        self.register_buffer("box_extent", extent, persistent=False)

    # -- parameter groups (for finetuning strategies) -------------------------
    def image_block_parameters(self):
        yield from self.merger_shallow.parameters()
        yield from self.merger_deep.parameters()

    def predictor_parameters(self):
        yield from self.predictor.parameters()

    # -- image block -----------------------------------------------------------
    def image_embedding(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """G(M): (n_img, 2 * merger_dim + embedding_dim)."""
        merged = torch.cat(
            [self.merger_shallow(features["tokens_shallow"]), self.merger_deep(features["tokens_deep"])],
            dim=-1,
        )
        merged = F.normalize(merged, p=2, dim=-1)
        emb = features["embedding"].to(merged.dtype)
        return torch.cat([merged, emb], dim=-1)

    def coord_features(self, coords_mm: torch.Tensor) -> torch.Tensor:
        """γ(x) of MNI coordinates (..., 3) mm -> (..., 2m), always in float32.

        With σ = 32 the phases x·B reach hundreds of radians; bf16 would put
        ~0.3 rad of error on them, so autocast is switched off here.
        """
        coords = torch.as_tensor(coords_mm, dtype=torch.float32, device=self.fourier.B.device)
        with _full_precision(coords):
            return self.fourier((coords - self.box_lower) / self.box_extent)  # normalise_coords

    # -- split first layer -----------------------------------------------------
    def _first_weights(self):
        first = self.predictor[0]
        d = self.config.image_dim
        return first.weight[:, :d], first.weight[:, d:], first.bias

    def image_code(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Image part of the first layer, W_g G(M) + b: (n_img, width)."""
        w_g, _, b = self._first_weights()
        return F.linear(self.image_embedding(features), w_g, b)

    def coord_code(self, coords_mm: torch.Tensor) -> torch.Tensor:
        """Coordinate part of the first layer, W_c γ(x): (..., 3) -> (..., width),
        in float32 whatever autocast is active (its inputs are phases)."""
        _, w_c, _ = self._first_weights()
        gamma = self.coord_features(coords_mm)
        with _full_precision(gamma):
            return F.linear(gamma, w_c.float())

    def head(self, first: torch.Tensor) -> torch.Tensor:
        """The predictor after its first linear layer: (..., width) -> (...)."""
        x = first
        for layer in self.predictor[1:]:
            x = layer(F.relu(x))
        return x.squeeze(-1)

    def forward_codes(self, image_code: torch.Tensor, coord_code: torch.Tensor) -> torch.Tensor:
        """Responses from precomputed codes: image (n_img, width) and coordinate
        (n_vox, width) shared by all images, or (n_img, n_vox, width) per image.

        Under autocast the sum and the first ReLU run in the autocast dtype: the
        float32 coordinate code is rounded to it before the add (its inputs, the
        phases, were float32), so the step's largest activation, (n_img, n_vox,
        width), is never materialised in float32. Without autocast nothing changes.
        """
        if coord_code.ndim == 2:
            coord_code = coord_code[None, :, :]
        kind = image_code.device.type
        if kind != "meta" and torch.is_autocast_enabled(kind):
            dtype = torch.get_autocast_dtype(kind)
            image_code, coord_code = image_code.to(dtype), coord_code.to(dtype)
        return self.head(image_code[:, None, :] + coord_code)

    def forward(self, features: Mapping[str, torch.Tensor], coords_mm: torch.Tensor) -> torch.Tensor:
        """(n_img, n_vox) predicted responses at ``coords_mm``: (n_vox, 3) the
        same voxels for every image, or (n_img, n_vox, 3) a voxel set per image."""
        return self.forward_codes(self.image_code(features), self.coord_code(coords_mm))

    def forward_concat(self, features: Mapping[str, torch.Tensor], coords_mm: torch.Tensor) -> torch.Tensor:
        """Reference (the authors' route): concatenate [G(M), γ(x)] for every
        pair, then the full MLP. ``coords_mm`` as in :meth:`forward`."""
        g = self.image_embedding(features)
        c = self.coord_features(coords_mm)
        if c.ndim == 2:
            c = c[None].expand(g.shape[0], -1, -1)
        n_img, n_vox = c.shape[:2]
        pairs = torch.cat([g[:, None, :].expand(n_img, n_vox, -1).to(c.dtype), c], dim=-1)
        return self.head(self.predictor[0](pairs))


def set_trainable(model: NRF, trainable: str) -> list[nn.Parameter]:
    """Freeze all but one part of an NRF; return the parameters left trainable.

    trainable : "all" (image block and predictor), "image_block" (the two
    mergers only) or "predictor" (the MLP only). B is a buffer, never trained.
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable={trainable!r}; choose one of {TRAINABLE}")
    image = set(map(id, model.image_block_parameters()))
    keep = []
    for p in model.parameters():
        is_image = id(p) in image
        on = trainable == "all" or (trainable == "image_block") == is_image
        p.requires_grad_(on)
        if on:
            keep.append(p)
    return keep


def count_parameters(config: NRFConfig) -> dict[str, int]:
    """Parameter counts of an NRF of this config, built on the meta device
    (no memory allocated): image_block, predictor, total."""
    with torch.device("meta"):
        model = NRF(config)
    image = sum(p.numel() for p in model.image_block_parameters())
    pred = sum(p.numel() for p in model.predictor_parameters())
    return {"image_block": image, "predictor": pred, "total": image + pred}
