"""Training NRFs and the linear baseline on cached image features.

NRF (DESIGN.md §1): each step draws ``batch_images`` training images and,
for each of them, ``batch_voxels`` voxels at random (``voxel_sampling:
per_image``, the authors' code; ``shared`` draws one voxel set for all images
of the step) from a ``torch.Generator`` seeded by ``seed``; the loss is
(1 - alpha) * MSE - alpha * mean cosine similarity, the cosine taken over the
sampled voxels of each image; AdamW. Every ``eval_every`` steps the model
predicts all validation images at all voxels (chunked) and is scored by the
median voxel Pearson r; with ``patience`` set, training stops after that many
evaluations without improvement and the best state is restored. With
``patience=None`` it runs exactly ``max_steps`` steps and keeps the final
state (small-N finetuning: a handful of validation images stops training
almost at once, notes/simulation-findings.md finding 5).

Linear baseline: AdamW for ``epochs`` epochs over shuffled minibatches of
``batch_images`` images (all voxels), MSE loss, learning rate decaying
linearly from ``lr`` to 0; the state with the lowest validation MSE is kept.

With ``precision: bf16``, bf16 autocast is used on CUDA only (the Fourier
features and the coordinate half of the first layer stay float32; their sum
with the image half and the first ReLU run in bf16); ``fp32`` is what the
authors trained with, on CUDA with TF32 matmuls. On CPU everything runs in
float32 and the same seed on the same data gives identical weights. A
non-finite loss stops training with the step and the data named, before its
update reaches the weights.

The GPU step (issue 22): the training split (responses, coordinates, cached
features) moves to the device once (:class:`TrainingBatches`; pinned host
memory and non-blocking copies when it does not fit), images and voxels are
drawn there, AdamW is fused on CUDA, and the loss is read back only at
records, so a step never waits for the device. ``compile: true`` runs the
NRF's training forward through ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nrf.metrics import mse_per_voxel, pearson_per_voxel, summarise
from nrf.models.linear import LinearConfig, LinearEncoder
from nrf.models.nrf import NRF, NRFConfig, set_trainable
from nrf.training.optim import AdamW, LinearDecay

logger = logging.getLogger(__name__)

VOXEL_SAMPLING = ("per_image", "shared")
PRECISIONS = ("bf16", "fp32")


@dataclass
class TrainConfig:
    """Training settings shared by NRF and the linear baseline.

    NRF: batch_images x batch_voxels per step, lr, weight_decay, alpha (the
    cosine weight), max_steps, eval_every (steps; None = one pass over the
    training images), patience (evaluations without improvement; None = fixed
    budget of max_steps, final state kept), min_steps (no early stop before),
    trainable ("all" | "image_block" | "predictor").
    Linear: epochs, batch_images, lr (decays linearly to 0), weight_decay.
    NRF also: voxel_sampling ("per_image": a fresh voxel set for each image of
    a step, as the authors; "shared": one set for the whole step).
    Both: seed (initial weights and sampling), device, precision ("bf16":
    bf16 autocast on CUDA; "fp32"), eval_chunk_images x eval_chunk_voxels
    (prediction chunk). NRF: compile (run the training forward through
    ``torch.compile``; off by default, a one-off compile costs minutes).
    """

    batch_images: int = 32
    batch_voxels: int = 2000
    lr: float = 3e-4
    weight_decay: float = 0.015
    alpha: float = 0.1
    max_steps: int = 50_000
    eval_every: int | None = None
    patience: int | None = 5
    min_steps: int = 0
    trainable: str = "all"
    epochs: int = 150
    seed: int = 0
    device: str = "cpu"
    voxel_sampling: str = "per_image"
    precision: str = "bf16"
    eval_chunk_images: int = 64
    eval_chunk_voxels: int = 4096
    compile: bool = False

    def __post_init__(self):
        if self.voxel_sampling not in VOXEL_SAMPLING:
            raise ValueError(f"voxel_sampling must be one of {VOXEL_SAMPLING}, got {self.voxel_sampling!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps={self.min_steps} exceeds max_steps={self.max_steps}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EncodingSplit:
    """Images of one split: cached features and measured responses, row-aligned.

    features  : mapping with tokens_shallow, tokens_deep (n_images, n_tokens,
                token_dim) and embedding (n_images, embedding_dim); numpy
                arrays or tensors (float16 tokens are fine)
    responses : (n_images, n_voxels) float32
    """

    features: Mapping
    responses: np.ndarray

    def __post_init__(self):
        n = len(self.responses)
        for k, v in self.features.items():
            if len(v) != n:
                raise ValueError(f"features[{k!r}] has {len(v)} rows, responses have {n}")

    @property
    def n_images(self) -> int:
        return len(self.responses)


def sample_voxels(n_vox: int, k: int, n_img: int, mode: str, gen: torch.Generator,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Voxel columns of one step: (k,) shared by all images, or (n_img, k) one
    set per image (``per_image``); each set is drawn without replacement, on
    ``device`` (default: the generator's).

    Per image, the k smallest of n_vox uniform draws (``topk``): every k-subset
    is equally likely, the distribution of the authors' ``np.random.choice(n,
    k, replace=False)``. On the CPU it stays ``rand(...).argsort()[:, :k]``:
    ``topk`` draws the same set, but orders tied draws differently, which moved
    the simulated default's weights and tables; on a GPU nothing reaches the host.
    """
    device = torch.device(device) if device is not None else gen.device
    if mode == "shared":
        return torch.randperm(n_vox, generator=gen, device=device)[:k]
    noise = torch.rand(n_img, n_vox, generator=gen, device=device)
    if device.type == "cpu":  # the CPU keeps argsort: tied draws in the same order as ever, so the same weights
        return noise.argsort(dim=1)[:, :k]
    return noise.topk(k, dim=1, largest=False, sorted=True).indices


def _non_finite(value: float, step: int, source: str) -> FloatingPointError:
    return FloatingPointError(
        f"training loss is {value} at step {step} on {source}: the inputs hold non-finite values "
        f"or training diverged (lower lr?) — no checkpoint was written"
    )


def _check_loss(loss, step: int, source: str) -> None:
    value = float(loss)
    if not math.isfinite(value):
        raise _non_finite(value, step, source)


def fused_supported(device: torch.device | str) -> bool:
    """Whether the trainers here use AdamW's fused kernel on ``device``: on CUDA.
    The CPU keeps PyTorch's default implementation (fused exists there too, but
    would move CPU results by float rounding; the unit tests check it agrees to
    1e-6). A fused optimizer also lets :func:`fit_steps` skip the update of a
    non-finite loss on the device, without waiting for it."""
    return torch.device(device).type == "cuda"


def adamw(params, config: "TrainConfig", device: torch.device | str) -> AdamW:
    """AdamW at ``config.lr`` and ``config.weight_decay``, fused where
    :func:`fused_supported` says so (:mod:`nrf.training.optim`: PyTorch's
    update, bit for bit, without importing torch._dynamo)."""
    return AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                 fused=True if fused_supported(device) else None)


@contextlib.contextmanager
def tf32_matmuls(device: torch.device | str):
    """TF32 tensor cores for float32 matmuls while the block runs on a CUDA
    ``device`` (``precision: fp32`` and the float32 coordinate half); the
    setting is restored after. Elsewhere nothing changes (the CPU has no TF32;
    ``torch.set_float32_matmul_precision`` would also switch oneDNN's CPU
    matmuls, so only the CUDA flag is set)."""
    if torch.device(device).type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        yield
    finally:
        matmul.fp32_precision = before


#: keyword arguments of ``torch.compile`` under ``compile: true`` (tests pick a quick backend)
COMPILE_OPTIONS: dict = {}

#: a split moves to the device when it takes at most this share of the free device memory
#: (the rest is left to the model, its optimiser state and a step's activations)
RESIDENT_SHARE = 0.5


def _free_device_memory(device: torch.device) -> int:
    """Bytes a new tensor can still take on a CUDA device: the driver's free
    memory (``torch.cuda.mem_get_info``) plus what PyTorch's caching allocator
    holds unused."""
    free = torch.cuda.mem_get_info(device)[0]
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class TrainingBatches:
    """The training split on the training device, and the draw of each step's batch.

    At construction the responses (n_train, n_vox) float32, the coordinates
    (n_vox, 3) and the cached features (float16 tokens stay float16) move to
    ``device`` once: about 6 GB for a paper subject. When they would take more
    than ``RESIDENT_SHARE`` of the free device memory (``torch.cuda.mem_get_info``
    plus what PyTorch's allocator holds unused), the features stay in host
    memory instead: each step gathers its images into one of two pinned
    buffers and copies them with ``non_blocking`` (responses and coordinates
    still move). ``resident`` forces either.

    :meth:`draw` takes ``n_images`` images uniformly without replacement and,
    per image (``per_image``) or once for all (``shared``), ``n_voxels`` voxels
    without replacement (:func:`sample_voxels`), on the device from a generator
    there seeded by ``seed``; with host features the images are drawn on the
    CPU. On a CPU device the draws are those of the earlier host path
    (``randperm`` then ``rand(...)``, one CPU generator). A resident draw
    never synchronises with the device. A draw's features gathered on the
    host (the CPU device, or the fallback) live in one of two reused buffers,
    valid until the draw after next: a training step uses them within itself.
    """

    def __init__(self, features: Mapping, responses, coords_mm, *, n_images: int, n_voxels: int,
                 mode: str, device: torch.device | str, seed: int, resident: bool | None = None):
        self.device = device = torch.device(device)
        feats = _tensors(features)
        resp = torch.as_tensor(responses if torch.is_tensor(responses) else np.asarray(responses, dtype=np.float32))
        coords = torch.as_tensor(coords_mm if torch.is_tensor(coords_mm) else np.asarray(coords_mm, dtype=np.float32))
        self.n_train, self.n_vox = resp.shape
        n_images, n_voxels = min(n_images, self.n_train), min(n_voxels, self.n_vox)
        self.n_images, self.n_voxels, self.mode = n_images, n_voxels, mode
        self.nbytes = _nbytes([resp, coords, *feats.values()])
        if resident is None:
            resident = device.type != "cuda" or self.nbytes <= RESIDENT_SHARE * _free_device_memory(device)
        self.resident = resident
        self.responses = resp.to(device, dtype=torch.float32)
        self.coords = coords.to(device, dtype=torch.float32)
        on_device = device.type not in ("cpu", "meta")  # meta: a benchmark's host-only dispatch
        self.col_gen = torch.Generator(device=device if on_device else "cpu").manual_seed(seed)
        if resident:
            self.features = {k: v.to(device) for k, v in feats.items()}
            self.row_gen = self.col_gen
        else:
            self.features = feats
            self.row_gen = self.col_gen if not on_device else torch.Generator().manual_seed(seed)
        # host gathers write into two reused buffers: pinned for a GPU's non-blocking copies; on the CPU
        # they spare the 19 MB of fresh pages a paper batch would fault in every step (half its time)
        self._staged = not resident or device.type == "cpu"
        if self._staged:
            pin = device.type == "cuda"
            self._staging = [
                {"rows": torch.empty(n_images, dtype=torch.long, pin_memory=pin),
                 **{k: torch.empty((n_images, *v.shape[1:]), dtype=v.dtype, pin_memory=pin) for k, v in feats.items()}}
                for _ in range(2)]
            self._copied = [None, None]  # CUDA event after each buffer's last copy
            self._slot = 0

    def draw(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(features of the images, coordinates (n_img, k, 3) per image or
        (k, 3) shared, measured responses (n_img, k)), all on the device."""
        rows = torch.randperm(self.n_train, generator=self.row_gen, device=self.row_gen.device)[: self.n_images]
        if self._staged:
            feats, rows = self._stage(rows)
        else:
            feats = {k: v.index_select(0, rows) for k, v in self.features.items()}
        cols = sample_voxels(self.n_vox, self.n_voxels, len(rows), self.mode, self.col_gen, self.device)
        # index_select and gather rather than advanced indexing: the same values, less dispatch per step
        picked = self.responses.index_select(0, rows)
        target = picked.gather(1, cols) if cols.ndim == 2 else picked.index_select(1, cols)
        coords = self.coords.index_select(0, cols.reshape(-1)).view(*cols.shape, 3)
        return feats, coords, target

    def _stage(self, rows: torch.Tensor):
        slot, self._slot = self._slot, 1 - self._slot
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()  # the copy out of this buffer two steps ago (long done)
        buf = self._staging[slot]
        buf["rows"].copy_(rows)
        for k, v in self.features.items():
            torch.index_select(v, 0, rows, out=buf[k])
        moved = {k: t.to(self.device, non_blocking=True) for k, t in buf.items()}
        if self.device.type == "cuda":
            self._copied[slot] = torch.cuda.Event()
            self._copied[slot].record()
        rows = moved.pop("rows")
        return moved, rows


def nrf_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    """(1 - alpha) * MSE - alpha * mean over images of the cosine similarity
    between predicted and measured responses across voxels.

    pred, target : (n_img, n_vox)
    """
    mse = F.mse_loss(pred, target)
    cos = F.cosine_similarity(pred, target, dim=1).mean()
    return (1.0 - alpha) * mse - alpha * cos


# -- helpers ------------------------------------------------------------------
def _tensors(features: Mapping) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v) for k, v in features.items()}


def _take(features: dict[str, torch.Tensor], rows: torch.Tensor, device) -> dict[str, torch.Tensor]:
    return {k: v[rows].to(device, non_blocking=True) for k, v in features.items()}


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter, or of its first buffer (a model
    fit in closed form, e.g. fWRF or ridge, holds only buffers); CPU if neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


#: On the CPU the NRF head's (pairs x width) activations go through
#: memory-bound bias, ReLU and add kernels between its matrix products; in
#: blocks of about this many (image, voxel) pairs they stay in cache (a pass
#: over 100 images x 807 voxels: 2.2x faster than 64-image blocks). Each
#: pair's row goes through the same products either way, so the predictions
#: do not change (tests/unit/test_training.py).
CPU_PAIRS_PER_BLOCK = 4096


def forward_in_blocks(model: NRF, image_code: torch.Tensor, coord_code: torch.Tensor, device) -> torch.Tensor:
    """``model.forward_codes(image_code, coord_code)`` as float32 on the CPU,
    over a few images at a time on a CPU device (all at once on a GPU)."""
    if device.type != "cpu":
        return model.forward_codes(image_code, coord_code).float().cpu()
    step = max(1, CPU_PAIRS_PER_BLOCK // len(coord_code))
    return torch.cat([model.forward_codes(image_code[k : k + step], coord_code).float()
                      for k in range(0, len(image_code), step)])


@torch.no_grad()
def predict(
    model: nn.Module,
    features: Mapping,
    coords_mm=None,
    *,
    chunk_images: int = 64,
    chunk_voxels: int = 4096,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Predicted responses of every image at every voxel: (n_img, n_vox) float32.

    ``precision`` is the one the model was trained under (TrainConfig.precision,
    a checkpoint's :func:`trained_precision`): bf16 autocast on CUDA, else fp32.

    NRF needs ``coords_mm`` (n_vox, 3); the linear model predicts its own
    voxels. Work is chunked (chunk_images x chunk_voxels pairs at a time), so
    memory stays bounded whatever the number of voxels.
    """
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    feats = _tensors(features)
    n_img = len(next(iter(feats.values())))
    out = []
    try:
        if isinstance(model, NRF):
            if coords_mm is None:
                raise ValueError("an NRF needs the voxels' coordinates to predict")
            coords = torch.as_tensor(np.asarray(coords_mm), dtype=torch.float32).to(device)
            for i in range(0, n_img, chunk_images):
                rows = torch.arange(i, min(i + chunk_images, n_img))
                with _autocast(device, precision):
                    img = model.image_code(_take(feats, rows, device))
                    cols = []
                    for j in range(0, len(coords), chunk_voxels):
                        crd = model.coord_code(coords[j : j + chunk_voxels])
                        cols.append(forward_in_blocks(model, img, crd, device))
                out.append(torch.cat(cols, dim=1))
        else:
            for i in range(0, n_img, chunk_images):
                rows = torch.arange(i, min(i + chunk_images, n_img))
                with _autocast(device, precision):
                    out.append(model(_take(feats, rows, device)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out, dim=0).numpy().astype(np.float32, copy=False)


def trained_precision(ckpt: dict) -> str:
    """The precision a checkpoint was trained under, which its predictions use too."""
    return (ckpt.get("train_config") or {}).get("precision", "fp32")


def evaluate(
    model: nn.Module, split: EncodingSplit, coords_mm=None, config: TrainConfig | None = None
) -> dict:
    """Scores on a split: median_r (undefined r counted as 0), mean_r, mean_mse."""
    config = config or TrainConfig()
    pred = predict(
        model, split.features, coords_mm, chunk_images=config.eval_chunk_images,
        chunk_voxels=config.eval_chunk_voxels, device=config.device, precision=config.precision,
    )
    s = summarise(pearson_per_voxel(pred, split.responses), mse_per_voxel(pred, split.responses))
    return {"median_r": s["median_r"], "mean_r": s["mean_r"], "mse": s["mean_mse"]}


# -- the loop every gradient-trained encoder shares ---------------------------------
def fit_steps(
    model: nn.Module,
    step_loss: Callable[[int], torch.Tensor],
    optimizer: "AdamW | torch.optim.Optimizer",
    validate: Callable[[], dict | None],
    config: TrainConfig,
    *,
    steps_per_epoch: int,
    name: str,
    log: logging.Logger,
    source: str,
    keep_best: str | None = None,
    lower_is_better: bool = False,
    scheduler: "LinearDecay | torch.optim.lr_scheduler.LRScheduler | None" = None,
    stop: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """Run ``config.max_steps`` gradient steps: ``step_loss(step)`` draws a
    batch and returns its loss, then the loss is checked, back-propagated and
    ``optimizer`` (and ``scheduler``, if any) stepped. Records every
    ``eval_every`` steps (default one epoch) and at the last step.

    A record holds the step, the mean training loss since the last record,
    ``validate()``'s scores prefixed ``val_`` (when it returns any) and the
    seconds so far. With ``keep_best`` (a record key) the state at its best
    value is restored at the end (None: the final state is kept); with
    ``config.patience`` as well, training stops after ``patience`` records
    without a new best once ``min_steps`` have run. ``stop(record)``, if
    given, is asked after each record (and its best-state bookkeeping) and
    ends training when it returns True (Universal: the authors stop once a
    plateau scheduler has cut the learning rate below 1e-7).

    A non-finite loss never reaches the weights. With a fused optimizer
    (:func:`adamw` on CUDA) the check stays on the device: a flag set by the
    first non-finite loss makes the fused kernel skip that update and every
    later one (its ``found_inf`` input, as ``GradScaler`` uses it), and the
    next record reads the flag and raises naming that step, so the weights are
    those before it, as on the CPU, with no synchronisation per step. Any
    other optimizer has the loss read before every update: free on the CPU, a
    synchronisation per step on a GPU. On CUDA, float32 matmuls use TF32
    while the loop runs (:func:`tf32_matmuls`). However it ends, every
    parameter is left trainable again (callers freeze some to finetune the
    rest). Returns the history.
    """
    if config.patience is not None and keep_best is None:
        raise ValueError("early stopping (patience) needs a record key to keep the best state by")
    sign = -1.0 if lower_is_better else 1.0
    settings = contextlib.ExitStack()
    masked = bool(getattr(optimizer, "defaults", {}).get("fused"))
    try:
        settings.enter_context(tf32_matmuls(model_device(model)))
        eval_every = config.eval_every or max(1, steps_per_epoch)
        flags = None  # masked: (any loss non-finite yet, the first such loss, steps before it), on the device
        history: list[dict] = []
        best, best_state, bad = -math.inf, None, 0
        running, n_running, t0 = 0.0, 0, time.perf_counter()
        for step in range(1, config.max_steps + 1):
            loss = step_loss(step)
            if masked:
                flags = _flag_non_finite(loss.detach(), flags)
                optimizer.found_inf = flags[0].float()  # 1.0: the fused kernel leaves weights and state as they are
            else:
                _check_loss(loss.detach(), step, source)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            running = running + loss.detach()  # stays on the device: no sync per step
            n_running += 1
            if step % eval_every and step != config.max_steps:
                continue
            if masked and bool(flags[0]):
                raise _non_finite(float(flags[1]), int(flags[2]) + 1, source)
            record = {"step": step, "train_loss": float(running) / n_running}
            _check_loss(record["train_loss"], step, source)
            running, n_running = 0.0, 0
            scores = validate()
            if scores is not None:
                model.train()
                record.update({f"val_{k}": v for k, v in scores.items()})
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            log.info("%s step %d: %s", name, step, {k: round(v, 5) for k, v in record.items() if k != "step"})
            if keep_best is not None and sign * record[keep_best] > best:
                best, best_state, bad = sign * record[keep_best], _copy_state(model), 0
                record["best"] = True
            elif config.patience is not None:
                bad += 1
                if bad >= config.patience and step >= config.min_steps:
                    log.info("early stop at step %d: best %s %.4f", step, keep_best, sign * best)
                    break
            if stop is not None and stop(record):
                log.info("%s: stopped at step %d", name, step)
                break
        if best_state is not None:
            model.load_state_dict(best_state)
            log.info("%s: kept the state at the best %s, %.5f", name, keep_best, sign * best)
        return history
    finally:
        settings.close()
        if masked:
            vars(optimizer).pop("found_inf", None)
        for p in model.parameters():
            p.requires_grad_(True)


def _flag_non_finite(loss: torch.Tensor, flags):
    """Device-side bookkeeping of non-finite losses, no synchronisation: (a
    non-finite loss has been seen, the first one, the number of steps before
    it)."""
    bad = ~torch.isfinite(loss)
    if flags is None:
        return bad, loss.clone(), (~bad).long()
    seen, first, clean = flags
    first = torch.where(seen, first, loss)
    seen = seen | bad
    return seen, first, clean + (~seen).long()


# -- NRF ----------------------------------------------------------------------
def train_nrf(
    train: EncodingSplit,
    val: EncodingSplit | None,
    coords_mm,
    config: TrainConfig,
    *,
    model_config: NRFConfig | None = None,
    model: NRF | None = None,
    log: logging.Logger | None = None,
    source: str = "the training data",
) -> tuple[NRF, list[dict]]:
    """Train (or, given ``model``, finetune) an NRF.

    Parameters
    ----------
    train, val : EncodingSplit; ``val`` may be None only with ``patience=None``
    coords_mm : (n_voxels, 3) MNI millimetres of the responses' columns
    config : TrainConfig
    model_config : sizes of a new NRF (initialised from ``config.seed``)
    model : an existing NRF to continue from (finetuning); updated in place
    source : the files trained on, named if the loss turns non-finite

    Returns
    -------
    model : the NRF at the best validation median r (or after max_steps when
            patience is None), on ``config.device``, all parameters trainable
    history : one dict per evaluation: step, train_loss (mean since the last
              record), val_median_r, val_mean_r, val_mse (when val), seconds,
              best (True where early stopping took a new best state)
    """
    log = log or logger
    if (model is None) == (model_config is None):
        raise ValueError("give exactly one of model_config (new NRF) or model (finetune)")
    if val is None and config.patience is not None:
        raise ValueError("early stopping needs a validation split: pass val or set patience=None")
    coords = np.asarray(coords_mm, dtype=np.float32)
    n_train, n_vox = train.responses.shape
    if coords.shape != (n_vox, 3):
        raise ValueError(f"coords_mm {coords.shape} must be (n_voxels, 3) = ({n_vox}, 3)")
    if val is not None and val.responses.shape[1] != n_vox:
        raise ValueError(f"val has {val.responses.shape[1]} voxels, train has {n_vox}")

    device = torch.device(config.device)
    if model is None:
        model = NRF(model_config, init_seed=config.seed)
    model.to(device).train()
    params = set_trainable(model, config.trainable)
    opt = adamw(params, config, device)

    n_img_step = min(config.batch_images, n_train)
    n_vox_step = min(config.batch_voxels, n_vox)
    batches = TrainingBatches(train.features, train.responses, coords, n_images=n_img_step, n_voxels=n_vox_step,
                              mode=config.voxel_sampling, device=device, seed=config.seed)
    forward = torch.compile(model, dynamic=False, **COMPILE_OPTIONS) if config.compile else model

    log.info(
        "NRF: %d training images, %d voxels, %d steps max, batch %d x %d (%s voxels), trainable=%s; "
        "training split (%.2f GB) %s%s",
        n_train, n_vox, config.max_steps, n_img_step, n_vox_step, config.voxel_sampling, config.trainable,
        batches.nbytes / 1e9, f"on {device}" if batches.resident else "features in pinned host memory",
        ", compiled" if config.compile else "",
    )

    def step_loss(step: int) -> torch.Tensor:
        feats, crd, target = batches.draw()
        with _autocast(device, config.precision):
            pred = forward(feats, crd)
        return nrf_loss(pred.float(), target, config.alpha)

    history = fit_steps(model, step_loss, opt, lambda: None if val is None else evaluate(model, val, coords, config),
                        config, steps_per_epoch=math.ceil(n_train / n_img_step), name="NRF", log=log, source=source,
                        keep_best=None if config.patience is None else "val_median_r")
    model.eval()
    return model, history


# -- linear baseline -------------------------------------------------------------
def train_linear(
    train: EncodingSplit,
    val: EncodingSplit | None,
    config: TrainConfig,
    *,
    model: LinearEncoder | None = None,
    log: logging.Logger | None = None,
    source: str = "the training data",
) -> tuple[LinearEncoder, list[dict]]:
    """Train the linear baseline from ``features["embedding"]`` to all voxels.

    ``config.epochs`` epochs of shuffled minibatches (``batch_images``), MSE,
    AdamW with the learning rate decaying linearly from ``lr`` to 0 over the
    run; keeps the epoch with the lowest validation MSE (the last epoch when
    ``val`` is None). The epochs run through ``fit_steps``, the loop NRF and
    Universal use, recording once per epoch. History: one dict per epoch
    (epoch, step, train_loss as the mean of the epoch's batch losses,
    val_median_r, val_mean_r, val_mse, best, seconds).
    """
    log = log or logger
    device = torch.device(config.device)
    emb = torch.as_tensor(np.asarray(train.features["embedding"], dtype=np.float32))
    responses = torch.as_tensor(np.asarray(train.responses, dtype=np.float32))
    n_train, n_vox = responses.shape
    if model is None:
        model = LinearEncoder(LinearConfig(emb.shape[1], n_vox), init_seed=config.seed)
    model.to(device).train()
    opt = adamw(model.parameters(), config, device)
    batch = min(config.batch_images, n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    total = config.epochs * steps_per_epoch
    sched = LinearDecay(opt, total)
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.empty(0, dtype=torch.long)
    log.info("linear: %d training images, %d voxels, %d epochs", n_train, n_vox, config.epochs)

    def step_loss(step: int) -> torch.Tensor:
        nonlocal perm
        i = (step - 1) % steps_per_epoch * batch
        if i == 0:  # a new epoch: a new shuffle of every training image
            perm = torch.randperm(n_train, generator=gen)
        rows = perm[i : i + batch]
        with _autocast(device, config.precision):
            pred = model(emb[rows].to(device))
        return F.mse_loss(pred.float(), responses[rows].to(device))

    val_emb = None if val is None else EncodingSplit({"embedding": val.features["embedding"]}, val.responses)
    epochs = replace(config, max_steps=total, eval_every=steps_per_epoch, patience=None, min_steps=0)

    def validate():
        return None if val_emb is None else evaluate(model, val_emb, None, config)

    history = fit_steps(model, step_loss, opt, validate,
                        epochs, steps_per_epoch=steps_per_epoch, name="linear", log=log, source=source,
                        keep_best=None if val is None else "val_mse", lower_is_better=True, scheduler=sched)
    for record in history:
        record["epoch"] = record["step"] // steps_per_epoch
    model.eval()
    return model, history
