"""The pipeline's own training loop at the paper's size: step time, evaluation
time, host and device memory, and what one subject's training costs.

Synthetic data with NSD's real shapes: 9,000 training images with CLIP-sized
features (2 x 196 x 768 float16 tokens, as the cache holds them, and a 512-d
embedding), 907 test images, 15,724 voxels (subj01). ``nrf.training.loop.train_nrf``
runs ``--steps`` steps with per-image voxel sampling and one validation pass
over all test images at all voxels (chunked), exactly what a rule runs.

    python benchmarks/paper_training.py --device cuda --steps 60 --out benchmarks/paper_training.md
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nrf.models.nrf import NRFConfig, count_parameters  # noqa: E402
from nrf.training.loop import EncodingSplit, TrainConfig, evaluate, train_nrf  # noqa: E402


def synthetic(n_img: int, n_vox: int, rng) -> EncodingSplit:
    tokens = lambda: rng.standard_normal((n_img, 196, 768), dtype=np.float32).astype(np.float16)  # noqa: E731
    features = {"tokens_shallow": tokens(), "tokens_deep": tokens(),
                "embedding": rng.standard_normal((n_img, 512), dtype=np.float32)}
    return EncodingSplit(features, rng.standard_normal((n_img, n_vox), dtype=np.float32))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--train-images", type=int, default=9000)
    ap.add_argument("--test-images", type=int, default=907)
    ap.add_argument("--voxels", type=int, default=15724)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--epochs", type=int, nargs="*", default=[10, 20, 30],
                    help="epochs (282 steps each) early stopping may take, for the per-subject estimate")
    ap.add_argument("--batch", type=int, nargs=2, default=[32, 2000], metavar=("IMAGES", "VOXELS"),
                    help="images x voxels per step (smaller on a CPU, to measure memory only)")
    ap.add_argument("--skip-eval", action="store_true", help="no validation pass (memory check on a CPU)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    train, test = synthetic(args.train_images, args.voxels, rng), synthetic(args.test_images, args.voxels, rng)
    coords = rng.uniform([-70, -100, -40], [70, 20, 60], size=(args.voxels, 3)).astype(np.float32)
    load_s = time.perf_counter() - t0
    model_cfg = NRFConfig(768, 196, 512, merger_token_dim=128, merger_dim=512, fourier_scale=32.0,
                          depth=args.depth, width=args.width, fourier_seed=42)
    cfg = TrainConfig(batch_images=args.batch[0], batch_voxels=args.batch[1], lr=3e-4, weight_decay=0.015, max_steps=args.steps,
                      eval_every=args.steps, patience=None, device=args.device, precision=args.precision,
                      eval_chunk_images=64, eval_chunk_voxels=16384)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warm = TrainConfig(**{**cfg.to_dict(), "max_steps": 5, "eval_every": 5})
    train_nrf(train, None, coords, warm, model_config=model_cfg)  # warm-up: kernels, allocator
    if args.device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model, _ = train_nrf(train, None, coords, cfg, model_config=model_cfg)
    if args.device == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / args.steps
    t0 = time.perf_counter()
    scores = {"median_r": float("nan")} if args.skip_eval else evaluate(model, test, coords, cfg)
    if args.device == "cuda":
        torch.cuda.synchronize()
    eval_s = float("nan") if args.skip_eval else time.perf_counter() - t0
    epoch_steps = int(np.ceil(args.train_images / 32))
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "precision": args.precision,
        "parameters": count_parameters(model_cfg)["total"],
        "train_images": args.train_images, "test_images": args.test_images, "voxels": args.voxels,
        "step_ms": 1000 * step_s,
        "batch": args.batch,
        "queries_per_s": args.batch[0] * args.batch[1] / step_s,
        "eval_s": eval_s,
        "eval_queries_per_s": args.test_images * args.voxels / eval_s,
        "epoch_s": epoch_steps * step_s + eval_s,
        "subject_minutes": {e: e * (epoch_steps * step_s + eval_s) / 60 for e in args.epochs},
        "host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "device_peak_gb": torch.cuda.max_memory_allocated() / 1e9 if args.device == "cuda" else None,
        "data_build_s": load_s,
        "val_median_r_random_data": scores["median_r"],
    }
    text = "\n".join([
        f"# NRF training at the paper's size through the pipeline's loop ({result['device']}, torch {result['torch']}, "
        f"{time.strftime('%Y-%m-%d')})", "",
        f"- {result['parameters']:,} parameters; batch {args.batch[0]} images x {args.batch[1]:,} voxels sampled "
        f"per image; precision {args.precision}",
        f"- step: **{result['step_ms']:.1f} ms** ({result['queries_per_s']:,.0f} queries/s)",
        f"- one validation pass ({args.test_images} images x {args.voxels:,} voxels): **{eval_s:.1f} s** "
        f"({result['eval_queries_per_s']:,.0f} queries/s)",
        f"- one epoch ({epoch_steps} steps + validation): {result['epoch_s']:.0f} s",
        "- one subject, training + evaluation, if early stopping ends after "
        + ", ".join(f"{e} epochs: {m:.1f} min" for e, m in result["subject_minutes"].items()),
        f"- peak host memory (RSS): {result['host_peak_rss_gb']:.1f} GB "
        f"(features of {args.train_images + args.test_images:,} images as float16 tokens)",
        f"- peak device memory: {result['device_peak_gb']:.1f} GB" if result["device_peak_gb"] else "",
        "",
    ])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
