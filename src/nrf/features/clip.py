"""NRF's image block input: frozen OpenAI CLIP ViT-B/16 (open_clip).

One forward pass per batch gives the three arrays of the extractor interface
(:mod:`nrf.features.base`):

    tokens_shallow : (n, 196, 768) float32, patch tokens after block ``layers[0]``
    tokens_deep    : (n, 196, 768) float32, patch tokens after block ``layers[1]``
    embedding      : (n, 512) float32, the projected image embedding

Choices, stated once:

- Blocks are counted from 1: layer 3 is the output of
  ``visual.transformer.resblocks[2]``. A tap is the raw residual stream after
  that block (no ``ln_post``), with the CLS token dropped, i.e. the 14 x 14
  patch grid in row-major order. The blocks run once; forward hooks on the
  tapped blocks record their outputs during ``encode_image``.
- ``embedding`` is ``model.encode_image(x)``: ``ln_post(CLS) @ proj``, *not*
  L2-normalised. NRF normalises the merged token vectors itself and joins the
  raw embedding (as the authors' ``image_embeds`` from Hugging Face's
  ``CLIPVisionModelWithProjection``, also unnormalised); normalising is one
  line downstream, undoing it is impossible.
- Preprocessing happens in torch, matching CLIP's PIL pipeline up to
  rounding: uint8 RGB -> [0, 1] -> bicubic resize of the short side to 224
  with antialiasing (torch's antialiased bicubic uses PIL's kernel, a = -0.5)
  -> centre crop 224 x 224 (a no-op for square images such as NSD's 425 x 425)
  -> clamp to [0, 1] (PIL's uint8 output clips bicubic overshoot) -> OpenAI's
  mean/std normalisation. PIL would also round to uint8 after resizing; we
  keep the floats.
- OpenAI's weights were trained with QuickGELU, and open_clip's plain
  ``ViT-B-16`` config uses nn.GELU (open_clip >= 2.2x only *warns* about the
  mismatch when loading the ``openai`` tag), so the architecture built here is
  ``ViT-B-16-quickgelu``.
- Weights: ``"openai"`` (open_clip's tag: found in the Hugging Face / open_clip
  cache or downloaded), a local file (OpenAI's TorchScript ``ViT-B-16.pt`` or
  an open_clip state dict ``.bin``/``.pt``/``.safetensors``), or ``None`` for a
  randomly initialised model, which needs ``allow_random=True`` and exists for
  tests only, so the pipeline can never cache features of random weights.
- ``precision``: ``fp32`` (the default, as the authors' code runs CLIP) or
  ``bf16`` (autocast on CUDA only, faster, about 1 % of the largest value in
  error); outputs are float32 always, and the cache stores the token grids as
  float16 (:mod:`nrf.features.cache`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nrf.features.base import Extractor

logger = logging.getLogger(__name__)

#: open_clip architecture: ViT-B/16 with QuickGELU, as OpenAI trained it
ARCHITECTURE = "ViT-B-16-quickgelu"
#: pretrained tags this extractor accepts for ``weights``
PRETRAINED_TAGS = ("openai",)
IMAGE_SIZE = 224
#: forward precisions: fp32 everywhere, or bf16 autocast on CUDA
PRECISIONS = ("fp32", "bf16")
N_BLOCKS = 12
N_TOKENS = 196
TOKEN_DIM = 768
EMBEDDING_DIM = 512

_FIX_HINT = (
    "To fix: place OpenAI's ViT-B-16 weights on this machine, either OpenAI's "
    "TorchScript file (https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt) "
    "or open_clip's state dict (open_clip_pytorch_model.bin from the Hugging Face "
    "repository timm/vit_base_patch16_clip_224.openai), and set "
    "features.clip_weights in the config to its path; or run once where "
    "open_clip can download the 'openai' tag into its cache."
)


class ClipViTB16(Extractor):
    """OpenAI CLIP ViT-B/16: patch tokens at two depths and the image embedding.

    Parameters
    ----------
    weights : "openai", a path to a local weights file, or None
        None builds a randomly initialised model and requires ``allow_random``.
    layers : (shallow, deep), 1-based transformer blocks in 1..12, default (3, 6)
    device : "cpu", "cuda", "cuda:1", ... or a torch.device
    batch_size : images per forward pass inside :meth:`extract`
    allow_random : permit ``weights=None`` (tests only)
    seed : seeds the random initialisation (``weights=None`` only)
    cache_dir : open_clip / Hugging Face download cache for the ``openai`` tag
    """

    name = "clip_vitb16"

    def __init__(
        self,
        weights: str | os.PathLike | None = "openai",
        *,
        layers: Sequence[int] = (3, 6),
        device="cpu",
        batch_size: int = 64,
        allow_random: bool = False,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        precision: str = "fp32",
    ):
        self.layers = _check_layers(layers)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} requested but torch sees no CUDA device; use device='cpu'"
            )

        model, self.weights_source = _build_model(weights, allow_random, seed, cache_dir)
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        blocks = self.model.visual.transformer.resblocks
        if len(blocks) != N_BLOCKS:
            raise RuntimeError(f"expected {N_BLOCKS} vision blocks, the model has {len(blocks)}")

        import open_clip  # open_clip: heavy; only building CLIP needs it

        self._mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(open_clip.OPENAI_DATASET_STD, device=self.device).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return (
            f"ClipViTB16(weights={self.weights_source!r}, layers={self.layers}, "
            f"device='{self.device}')"
        )

    # -- preprocessing ---------------------------------------------------------

    def preprocess(self, images: np.ndarray):
        """(n, H, W, 3) uint8 RGB -> (n, 3, 224, 224) float32 tensor on the device."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"images must be (n, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        if (h, w) != (IMAGE_SIZE, IMAGE_SIZE):
            scale = IMAGE_SIZE / min(h, w)
            size = (max(IMAGE_SIZE, round(h * scale)), max(IMAGE_SIZE, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
            top = (size[0] - IMAGE_SIZE) // 2
            left = (size[1] - IMAGE_SIZE) // 2
            x = x[:, :, top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
            x = x.clamp_(0.0, 1.0)
        return (x - self._mean) / self._std

    # -- extraction ------------------------------------------------------------

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Features of (n, H, W, 3) uint8 images, in chunks of ``batch_size``."""
        images = np.asarray(images)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"images must be a non-empty (n, H, W, 3) batch, got {images.shape}")
        parts = [
            self._extract_batch(images[i : i + self.batch_size])
            for i in range(0, len(images), self.batch_size)
        ]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _extract_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        pixels = self.preprocess(images)
        visual = self.model.visual
        blocks = visual.transformer.resblocks
        # open_clip < 2.2x ran the transformer sequence-first (L, N, D);
        # newer versions default to batch_first (N, L, D).
        batch_first = bool(getattr(visual.transformer, "batch_first", False))
        taps: dict[int, torch.Tensor] = {}

        def tap(layer):
            def hook(module, inputs, output):
                taps[layer] = output

            return hook

        handles = [blocks[layer - 1].register_forward_hook(tap(layer)) for layer in set(self.layers)]
        try:
            with torch.no_grad(), self._autocast():
                embedding = self.model.encode_image(pixels)
        finally:
            for handle in handles:
                handle.remove()

        n = len(images)
        out = {}
        for key, layer in zip(("tokens_shallow", "tokens_deep"), self.layers):
            tokens = taps[layer] if batch_first else taps[layer].transpose(0, 1)
            if tuple(tokens.shape) != (n, N_TOKENS + 1, TOKEN_DIM):
                raise RuntimeError(
                    f"block {layer} output has shape {tuple(tokens.shape)}, expected "
                    f"({n}, {N_TOKENS + 1}, {TOKEN_DIM}); open_clip's token layout changed?"
                )
            out[key] = tokens[:, 1:, :].float().cpu().numpy()
        out["embedding"] = embedding.float().cpu().numpy()
        return out

    def _autocast(self):
        if self.device.type == "cuda" and self.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def _check_layers(layers) -> tuple[int, int]:
    layers = tuple(int(layer) for layer in layers)
    if len(layers) != 2 or not all(1 <= layer <= N_BLOCKS for layer in layers):
        raise ValueError(
            f"layers must be two 1-based block numbers in 1..{N_BLOCKS} (shallow, deep), got {layers}"
        )
    return layers


def _build_model(weights, allow_random: bool, seed: int, cache_dir):
    """Return (open_clip CLIP model, description of the weights' source)."""
    import open_clip  # open_clip: heavy; only building CLIP needs it

    if weights is None:
        if not allow_random:
            raise ValueError(
                "ClipViTB16(weights=None) builds a randomly initialised CLIP, which is only "
                "meant for tests: pass allow_random=True there, or give weights='openai' or "
                "the path of a local weights file"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(ARCHITECTURE, pretrained=None)
        return model, f"random(seed={seed})"

    if isinstance(weights, str) and weights in PRETRAINED_TAGS:
        try:
            model = open_clip.create_model(
                ARCHITECTURE,
                pretrained=weights,
                cache_dir=None if cache_dir is None else str(cache_dir),
                require_pretrained=True,
            )
        except Exception as err:
            raise RuntimeError(
                f"CLIP ViT-B/16: could not load open_clip's pretrained tag {weights!r} for "
                f"{ARCHITECTURE} (tried open_clip's download cache"
                f"{'' if cache_dir is None else ' ' + str(cache_dir)}, then a download): "
                f"{type(err).__name__}: {err}. {_FIX_HINT}"
            ) from err
        return model, weights

    path = Path(weights).expanduser()
    if not path.is_file():
        raise RuntimeError(
            f"CLIP ViT-B/16: weights file {str(path)!r} does not exist (weights={str(weights)!r} "
            f"is neither a file nor one of the tags {PRETRAINED_TAGS}). {_FIX_HINT}"
        )
    try:
        model, kind = _load_local_weights(path)
    except Exception as err:
        reason = str(err).strip().rstrip(".")
        raise RuntimeError(
            f"CLIP ViT-B/16: could not load the weights in {str(path)!r}: "
            f"{type(err).__name__}: {reason}. Expected OpenAI's TorchScript ViT-B-16.pt or an "
            f"open_clip state dict (.bin/.pt/.safetensors) of {ARCHITECTURE}. {_FIX_HINT}"
        ) from err
    logger.info("loaded CLIP ViT-B/16 weights from %s (%s)", path, kind)
    return model, str(path)


def _load_local_weights(path: Path):
    """Build the model from a local checkpoint (strict); return (model, kind)."""
    import open_clip  # open_clip: heavy; only building CLIP needs it

    if _is_torchscript_archive(path):
        # OpenAI's original release: a TorchScript archive whose state dict uses
        # open_clip's CLIP names, plus entries that are not weights.
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
        for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
            state.pop(key, None)
        model = open_clip.create_model(ARCHITECTURE, pretrained=None)  # logs "initialized randomly"
        model.load_state_dict(state, strict=True)
        return model, "TorchScript archive"
    # a state dict (torch.load with weights_only=True, or safetensors), loaded
    # strictly by open_clip, which converts other layouts where it knows them
    model = open_clip.create_model(ARCHITECTURE, pretrained=str(path), require_pretrained=True)
    return model, "state dict"


def _is_torchscript_archive(path) -> bool:
    """True for a TorchScript zip (has ``constants.pkl``), False for torch.save files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[-1] == "constants.pkl" for name in archive.namelist())
