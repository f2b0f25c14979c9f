"""What scoring one set of decoded images costs on one core, before and after
the changes of issue 22 that keep every value (PixCorr and SSIM at 425 x 425,
MindEye2's settings; nrf.decoding.image_metrics).

The default run scores ~115 sets of 100 decoded 32 x 32 images (every method
of every adaptation cell, and offline decoding). Per set, measured in one
process, interleaved, medians of ``--repeats``:

- resizing to 256 and then 425 (torch bilinear): a channels-first tensor, as
  before 7b29c9c, against ``image_metrics.resize`` (channels-last);
- SSIM of each pair: scikit-image's ``structural_similarity``, as before
  6ffa079, against ``image_metrics`` with the seen images' filtered maps
  computed once (not counted: they serve every set).

Both pairs give the same values bit for bit (tests/unit/test_image_metrics.py).

    python benchmarks/decoded_metrics.py [--images 100] [--repeats 3] [--out benchmarks/decoded_metrics.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nrf.decoding import image_metrics as im  # noqa: E402


def channels_first_resize(images: np.ndarray, size: int) -> np.ndarray:
    """The resize before 7b29c9c."""
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(images)), size=(size, size), mode="bilinear",
                         align_corners=False, antialias=False).numpy()


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n_images: int, repeats: int, side: int = 32) -> dict:
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    seen = rng.random((n_images, 3, side, side), dtype=np.float32)
    recon = np.clip(seen + 0.3 * rng.standard_normal(seen.shape), 0, 1).astype(np.float32)
    gray = lambda x: rgb2gray(x.transpose(0, 2, 3, 1))  # noqa: E731
    seen_gray = gray(im.resize(im.resize(seen, im.EVAL_SIZE), im.PIXEL_SIZE))
    recon_gray = gray(im.resize(im.resize(recon, im.EVAL_SIZE), im.PIXEL_SIZE))
    terms = [im._ssim_seen_terms(x) for x in seen_gray]
    times = {k: [] for k in ("resize_before", "resize_after", "ssim_before", "ssim_after")}
    for _ in range(repeats):
        times["resize_before"].append(seconds(lambda: channels_first_resize(
            channels_first_resize(recon, im.EVAL_SIZE), im.PIXEL_SIZE)))
        times["resize_after"].append(seconds(lambda: im.resize(im.resize(recon, im.EVAL_SIZE), im.PIXEL_SIZE)))
        times["ssim_before"].append(seconds(lambda: [structural_similarity(
            y, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
            for x, y in zip(seen_gray, recon_gray)]))
        times["ssim_after"].append(seconds(lambda: [im._ssim_with_seen(y, t) for t, y in zip(terms, recon_gray)]))
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    m = measure(args.images, args.repeats)
    before, after = m["resize_before"] + m["ssim_before"], m["resize_after"] + m["ssim_after"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        f"Scoring one set of {args.images} decoded 32 x 32 images against their seen images on one core ({date}; "
        f"{platform.machine()}, torch {torch.__version__}; medians of {args.repeats}, interleaved).", "",
        "| part | before (s) | after (s) | ratio |", "|---|---|---|---|",
        f"| resize 32 -> 256 -> 425 | {m['resize_before']:.2f} | {m['resize_after']:.2f} | "
        f"{m['resize_before'] / m['resize_after']:.2f}x |",
        f"| SSIM of every pair | {m['ssim_before']:.2f} | {m['ssim_after']:.2f} | "
        f"{m['ssim_before'] / m['ssim_after']:.2f}x |",
        f"| **both** | **{before:.2f}** | **{after:.2f}** | **{before / after:.2f}x** |", "",
        "The values are the same bit for bit before and after (tests/unit/test_image_metrics.py).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
