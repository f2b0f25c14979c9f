"""The pipeline's own NRF training at the paper's size, one measurement at a time.

Synthetic data with NSD's shapes (9,000 training images with CLIP-sized
features: 2 x 196 x 768 float16 tokens, as the cache holds them, and a 512-d
embedding; 907 validation/test images; 15,724 voxels, subj01), the 8 x 4,096
NRF, batches of 32 images x 2,000 voxels sampled per image. Each stage
appends its result to ``PREFIX.jsonl`` (one JSON object) and ``PREFIX.md`` as
soon as it is measured, so a run cut short keeps what it measured:

* ``train``: model build (init on the CPU, then to the device) timed apart;
  ``nrf.training.loop.train_nrf`` (a rule's code path) runs 2 x ``--steps``
  steps recording at ``--steps`` and at the end: its set-up (the training
  split to the device, the optimiser), the first ``--steps`` (warm-up: kernel
  selection, allocator; compilation with ``--compile``), then the steady step
  time, FLOPs per step, TFLOP/s and their share of the device's peak, peak
  device memory;
* ``sync`` (CUDA): the same loop with ``torch.cuda.set_sync_debug_mode("error")``
  on from the second step's draw to the last step's: any host-device
  synchronisation in a step (draw, forward, backward, fused AdamW with the
  device-side non-finite flag) raises and is recorded;
* ``val``: one validation pass (``evaluate``: all validation images at all
  voxels, chunked as the pipeline chunks) and its throughput;
* ``clip``: CLIP ViT-B/16 feature extraction (the pipeline's extractor, random
  weights, NSD's 425 x 425 images) in images/s, when open_clip is installed;
* ``estimate`` (reads ``PREFIX.jsonl``): one subject's training + evaluation
  (282 steps and a validation pass per epoch, a test prediction) and the
  number of epochs that fit in 15 minutes.

    python benchmarks/paper_training.py --device cuda --stages train sync val estimate --record OUT/gpu_paper_scale
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import split_first_layer as S  # noqa: E402
from nrf.models.nrf import NRF, NRFConfig, count_parameters  # noqa: E402
from nrf.training import loop  # noqa: E402
from nrf.training.loop import EncodingSplit, TrainConfig, evaluate, train_nrf  # noqa: E402

SIZES = {
    # images: train, val; voxels; tokens, token_dim, embedding; merger_token_dim, merger_dim; depth, width; batch
    "paper": dict(train=9000, val=907, voxels=15724, tokens=196, token_dim=768, embedding=512, merger_token_dim=128,
                  merger_dim=512, depth=8, width=4096, batch_images=32, batch_voxels=2000, clip_images=512),
    "tiny": dict(train=64, val=16, voxels=300, tokens=4, token_dim=8, embedding=8, merger_token_dim=4,
                 merger_dim=8, depth=3, width=32, batch_images=8, batch_voxels=50, clip_images=2),
}
STEPS_PER_EPOCH = math.ceil(9000 / 32)  # the paper's subject: 282
BUDGET_MIN = 15.0
STIMULI = 37_000  # the four subjects' images (4 x 9,000 + 1,000 shared) whose features the pipeline extracts


class Recorder:
    """Appends each measurement to PREFIX.jsonl and PREFIX.md at once."""

    def __init__(self, prefix: str | None):
        self.prefix = prefix
        if prefix:
            Path(prefix).parent.mkdir(parents=True, exist_ok=True)

    def add(self, stage: str, data: dict, lines: list[str]) -> None:
        data = {"stage": stage, "time": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), **data}
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        if self.prefix:
            with open(f"{self.prefix}.jsonl", "a") as f:
                f.write(json.dumps(data) + "\n")
            with open(f"{self.prefix}.md", "a") as f:
                f.write(text + "\n")

    def read(self) -> list[dict]:
        path = Path(f"{self.prefix}.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def synthetic(n_img: int, size: dict, seed: int) -> EncodingSplit:
    """Random features and responses of the pipeline's dtypes; at most 500 distinct images, tiled
    (drawing 5 GB of normal numbers would take longer than the measurement)."""
    g = torch.Generator().manual_seed(seed)
    unique = min(n_img, 500)
    reps = math.ceil(n_img / unique)

    def tile(x):
        return x.repeat(reps, *([1] * (x.ndim - 1)))[:n_img].numpy()

    tokens = lambda: tile(torch.randn(unique, size["tokens"], size["token_dim"], generator=g).half())  # noqa: E731
    features = {"tokens_shallow": tokens(), "tokens_deep": tokens(),
                "embedding": tile(torch.randn(unique, size["embedding"], generator=g))}
    return EncodingSplit(features, tile(torch.randn(unique, size["voxels"], generator=g)))


def model_config(size: dict) -> NRFConfig:
    return NRFConfig(size["token_dim"], size["tokens"], size["embedding"], merger_token_dim=size["merger_token_dim"],
                     merger_dim=size["merger_dim"], depth=size["depth"], width=size["width"], fourier_seed=42)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def stage_train(args, size, device, rec: Recorder, train, coords) -> NRF:
    cfg = model_config(size)
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])  # torch.optim's one-off lazy imports, outside the set-up
    _sync(device)
    t0 = time.perf_counter()
    model = NRF(cfg, init_seed=0)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.to(device)
    _sync(device)
    to_device_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n = args.steps
    tc = TrainConfig(batch_images=size["batch_images"], batch_voxels=size["batch_voxels"], max_steps=2 * n,
                     eval_every=n, patience=None, device=str(device), precision=args.precision, compile=args.compile)
    log = logging.getLogger("paper_training")
    log.setLevel(logging.INFO)
    collect = _Collect()
    log.addHandler(collect)
    t0 = time.perf_counter()
    model, history = train_nrf(train, None, coords, tc, model=model, log=log)
    _sync(device)
    total_s = time.perf_counter() - t0
    log.removeHandler(collect)
    first_s = history[0]["seconds"]
    step_s = (history[1]["seconds"] - history[0]["seconds"]) / n
    flop = S.step_flops(cfg, size["batch_images"], size["batch_voxels"], "per_image", "split")
    name = device_name(device)
    peak = S.peak_tflops(name, args.precision)
    label = f"{args.precision}{' + torch.compile' if args.compile else ''}"
    data = {"label": label, "device": name, "torch": torch.__version__, "precision": args.precision,
            "compile": args.compile, "size": args.size, "parameters": count_parameters(cfg)["total"],
            "batch": [size["batch_images"], size["batch_voxels"]], "train_images": size["train"],
            "voxels": size["voxels"], "build_s": build_s, "model_to_device_s": to_device_s,
            "setup_s": total_s - history[-1]["seconds"], "first_steps": n, "first_steps_s": first_s,
            "timed_steps": n, "step_ms": 1e3 * step_s, "tflop_per_step": flop / 1e12,
            "tflops": flop / step_s / 1e12, "peak_tflops": peak,
            "fraction_of_peak": flop / step_s / 1e12 / peak if peak else None,
            "device_peak_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
            "host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "log": [m for m in collect.messages if "training split" in m]}
    frac = f" = **{data['fraction_of_peak']:.0%}** of {peak:g} TFLOP/s" if peak else " (peak unknown)"
    rec.add("train", data, [
        f"## Training, {label}: `train_nrf`, {name}, torch {torch.__version__}", "",
        f"- {data['parameters']:,} parameters (depth {size['depth']} x width {size['width']}); batch "
        f"{size['batch_images']} images x {size['batch_voxels']:,} of {size['voxels']:,} voxels per image; "
        f"{size['train']:,} training images",
        f"- model build: **{build_s:.2f} s** (init on the CPU) + {to_device_s:.2f} s to the device; "
        f"train_nrf set-up (training split to the device, optimiser): {data['setup_s']:.2f} s "
        f"({'; '.join(data['log']) or 'no log line'})",
        f"- first {n} steps (warm-up{', compilation' if args.compile else ''}): {first_s:.2f} s; "
        f"then **{data['step_ms']:.1f} ms per step** over {n} steps",
        f"- {data['tflop_per_step']:.2f} TFLOP per step -> **{data['tflops']:.0f} TFLOP/s**{frac}",
        (f"- peak device memory {data['device_peak_gb']:.1f} GB" if data["device_peak_gb"]
         else "- (CPU: no device memory)"),
    ])
    return model


def stage_sync(args, size, device, rec: Recorder, train, coords, model) -> None:
    if device.type != "cuda":
        rec.add("sync", {"skipped": "CUDA only"}, ["## Synchronisation check: skipped (CUDA only)"])
        return
    steps = 6
    tc = TrainConfig(batch_images=size["batch_images"], batch_voxels=size["batch_voxels"], max_steps=steps,
                     eval_every=steps, patience=None, device=str(device), precision=args.precision)
    original = loop.TrainingBatches.draw
    calls = {"n": 0}

    def draw(self):
        calls["n"] += 1
        if calls["n"] == 2:
            torch.cuda.set_sync_debug_mode("error")
        elif calls["n"] == steps:
            torch.cuda.set_sync_debug_mode("default")  # the record after this step reads the loss
        return original(self)

    loop.TrainingBatches.draw = draw
    error = None
    try:
        train_nrf(train, None, coords, tc, model=model)
    except RuntimeError as e:
        error = str(e).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
        loop.TrainingBatches.draw = original
    checked = max(0, min(calls["n"], steps) - 2)
    rec.add("sync", {"steps_checked": checked, "sync_found": error},
            [f"## Synchronisation check: {checked} steps under `torch.cuda.set_sync_debug_mode('error')` "
             f"(draw, forward, backward, fused AdamW): "
             + (f"**a synchronisation**: {error}" if error else "**none**")])


def stage_val(args, size, device, rec: Recorder, model, coords, seed=1) -> None:
    val = synthetic(size["val"], size, seed)
    tc = TrainConfig(device=str(device), precision=args.precision)  # the pipeline's chunks: 64 images x 4,096 voxels
    if model is None:
        model = NRF(model_config(size), init_seed=0).to(device)
    evaluate(model, EncodingSplit({k: v[:2] for k, v in val.features.items()}, val.responses[:2]), coords, tc)
    _sync(device)
    t0 = time.perf_counter()
    evaluate(model, val, coords, tc)
    _sync(device)
    val_s = time.perf_counter() - t0
    flop = S.step_flops(model_config(size), size["val"], size["voxels"], "shared", "split") / 3
    name = device_name(device)
    peak = S.peak_tflops(name, args.precision)
    data = {"device": name, "precision": args.precision, "images": size["val"], "voxels": size["voxels"],
            "val_s": val_s, "queries_per_s": size["val"] * size["voxels"] / val_s, "pflop": flop / 1e15,
            "tflops": flop / val_s / 1e12, "fraction_of_peak": flop / val_s / 1e12 / peak if peak else None,
            "chunk": [tc.eval_chunk_images, tc.eval_chunk_voxels]}
    frac = f" ({data['fraction_of_peak']:.0%} of peak)" if peak else ""
    rec.add("val", data, [
        f"## Validation pass ({args.precision}): `evaluate`, {size['val']} images x {size['voxels']:,} voxels, "
        f"chunks of {tc.eval_chunk_images} x {tc.eval_chunk_voxels:,}", "",
        f"- **{val_s:.2f} s** ({data['queries_per_s']:,.0f} queries/s; {data['pflop']:.3g} PFLOP -> "
        f"{data['tflops']:.0f} TFLOP/s{frac})"])


def stage_clip(args, size, device, rec: Recorder) -> None:
    try:
        import open_clip  # noqa: F401
    except ImportError as e:
        rec.add("clip", {"skipped": f"open_clip not importable: {e}"},
                [f"## CLIP extraction: skipped (open_clip not importable: {e})"])
        return
    from nrf.features.clip import ClipViTB16

    n = args.clip_images or size["clip_images"]
    images = np.random.default_rng(0).integers(0, 256, size=(n, 425, 425, 3), dtype=np.uint8)
    rows = []
    for precision in (["fp32", "bf16"] if device.type == "cuda" else ["fp32"]):
        t0 = time.perf_counter()
        extractor = ClipViTB16(weights=None, allow_random=True, layers=(4, 7), device=device, batch_size=64,
                               precision=precision)
        build_s = time.perf_counter() - t0
        extractor.extract(images[: min(n, 64)])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        out = extractor.extract(images)
        _sync(device)
        s = time.perf_counter() - t0
        row = {"precision": precision, "images": n, "seconds": s, "images_per_s": n / s, "build_s": build_s,
               "stimuli_minutes": STIMULI / (n / s) / 60, "shapes": {k: list(v.shape) for k, v in out.items()}}
        rows.append(row)
        rec.add("clip", {"device": device_name(device), **row}, [
            f"## CLIP ViT-B/16 extraction ({precision}, random weights, 425 x 425 images, batches of 64, "
            f"{device_name(device)})", "",
            f"- **{row['images_per_s']:,.0f} images/s** ({n} images in {s:.2f} s; model build {build_s:.1f} s); "
            f"the {STIMULI:,} images of the four subjects: {row['stimuli_minutes']:.1f} min"])


def stage_estimate(args, rec: Recorder) -> dict:
    records = rec.read()
    train = [r for r in records if r["stage"] == "train" and not r.get("compile")]
    val = [r for r in records if r["stage"] == "val"]
    if not train or not val:
        rec.add("estimate", {"skipped": "needs a train and a val record"},
                ["## Per-subject estimate: skipped (no train or val record)"])
        return {}
    t = next((r for r in train if r["precision"] == "bf16"), train[0])
    v = next((r for r in val if r["precision"] == t["precision"]), val[0])
    step_s, val_s = t["step_ms"] / 1e3, v["val_s"]
    epoch_s = STEPS_PER_EPOCH * step_s + val_s
    once_s = t["build_s"] + t["model_to_device_s"] + t["setup_s"] + val_s  # build, data to device, test prediction
    fit = max(0, math.floor((BUDGET_MIN * 60 - once_s) / epoch_s))
    minutes = {e: (once_s + e * epoch_s) / 60 for e in (10, 20, 40)}
    data = {"precision": t["precision"], "step_ms": t["step_ms"], "val_s": val_s, "epoch_s": epoch_s,
            "once_s": once_s, "epochs_in_15_min": fit, "subject_minutes": minutes, "size": t["size"],
            "device": t["device"]}
    rec.add("estimate", data, [
        f"## One subject ({t['size']} size, {t['precision']}, {t['device']})", "",
        f"- an epoch = {STEPS_PER_EPOCH} steps x {t['step_ms']:.1f} ms + a validation pass {val_s:.1f} s = "
        f"**{epoch_s:.1f} s**; once per subject: build, data to the device and a test prediction, {once_s:.1f} s",
        f"- **{fit} epochs fit in {BUDGET_MIN:g} minutes** (early stopping with patience 5 needs its best epoch "
        f"plus 5 within them)",
        "- training + evaluation if early stopping ends after " + ", ".join(
            f"{e} epochs: {m:.1f} min" for e, m in minutes.items())])
    return data


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="paper")
    ap.add_argument("--stages", nargs="+", default=["train", "sync", "val", "estimate"],
                    choices=["train", "sync", "val", "clip", "estimate"])
    ap.add_argument("--steps", type=int, default=20, help="warm-up steps, then as many timed steps")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--compile", action="store_true", help="train.compile: true")
    ap.add_argument("--clip-images", type=int)
    ap.add_argument("--batch", type=int, nargs=2, metavar=("IMAGES", "VOXELS"),
                    help="images x voxels per step instead of the size's (e.g. a CPU memory check)")
    ap.add_argument("--record", help="prefix of the .jsonl and .md results, appended after each measurement")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    size = dict(SIZES[args.size])
    if args.batch:
        size["batch_images"], size["batch_voxels"] = args.batch
    rec = Recorder(args.record)
    model = train = coords = None
    if {"train", "sync", "val"} & set(args.stages):
        t0 = time.perf_counter()
        train = synthetic(size["train"], size, seed=0)
        coords = np.random.default_rng(0).uniform([-70, -100, -40], [70, 20, 60], size=(size["voxels"], 3))
        print(f"synthetic data: {time.perf_counter() - t0:.1f} s", flush=True)
    for stage in args.stages:
        if stage == "train":
            model = stage_train(args, size, device, rec, train, coords)
        elif stage == "sync":
            model = model or NRF(model_config(size), init_seed=0).to(device)
            stage_sync(args, size, device, rec, train, coords, model)
        elif stage == "val":
            stage_val(args, size, device, rec, model, coords)
        elif stage == "clip":
            stage_clip(args, size, device, rec)
        elif stage == "estimate":
            stage_estimate(args, rec)


if __name__ == "__main__":
    main()
