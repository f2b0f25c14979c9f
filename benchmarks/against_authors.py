"""Our way vs the authors' way of doing the same work, timed in one run.

Each row times both ways on the same arrays in the same process, so the
machine's load cancels out of the ratio:

* pearson   : per-voxel Pearson r of predictions vs responses over all
              voxels (:func:`nrf.metrics.pearson_per_voxel`, vectorised) vs
              a Python loop of ``scipy.stats.pearsonr`` (one call per voxel);
              the results are checked equal.
* ensemble  : the voxelwise least-squares ensemble of K=3 base models
              (paper eq. 1-2) as one batched solve (:func:`nrf.ensemble.fit_ensemble`)
              vs one scikit-learn ``LinearRegression`` per voxel; weights
              checked equal.
* features  : the image features of one training batch (32 images) read
              from the HDF5 cache (:func:`nrf.features.cache.read_features`)
              vs recomputed from the stimuli with the extractor at every batch,
              as the authors' training loop does. For CLIP ViT-B/16 the cache
              holds CLIP-shaped features written through the cache's own
              writer and the network has random weights: the arithmetic, and so
              the time, are the same as with OpenAI's weights, which cannot be
              downloaded here.

    python benchmarks/against_authors.py [--only pearson ensemble features] [--out benchmarks/against_authors.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import scipy.stats
import torch

from nrf.ensemble import fit_ensemble
from nrf.features.extractors import get_extractor
from nrf.features.cache import extract_to_hdf5, read_features, read_stimuli
from nrf.metrics import pearson_per_voxel

N_VOXELS = 15_000  # the paper's subjects have 12,682-15,724 nsdgeneral voxels
N_TEST = 1_000  # shared test images
BATCH_IMAGES = 32  # the paper's training batch


def best_of(fn, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_pearson(rng) -> dict:
    pred = rng.normal(size=(N_TEST, N_VOXELS)).astype(np.float32)
    true = (0.3 * pred + rng.normal(size=pred.shape)).astype(np.float32)

    def loop():
        return np.array([scipy.stats.pearsonr(pred[:, v], true[:, v])[0] for v in range(N_VOXELS)])

    ours = best_of(lambda: pearson_per_voxel(pred, true), 3)
    t0 = time.perf_counter()
    ref = loop()
    theirs = time.perf_counter() - t0
    np.testing.assert_allclose(pearson_per_voxel(pred, true), ref, atol=1e-5)
    return {"what": f"Pearson r per voxel, {N_TEST:,} images x {N_VOXELS:,} voxels",
            "ours": "nrf.metrics.pearson_per_voxel (vectorised)", "authors": "loop of scipy.stats.pearsonr",
            "ours_s": ours, "authors_s": theirs}


def bench_ensemble(rng, n_images: int = 1_000) -> dict:
    from sklearn.linear_model import LinearRegression

    k = 3
    base = rng.normal(size=(k, n_images, N_VOXELS)).astype(np.float32)
    w = rng.uniform(0, 1, size=(N_VOXELS, k))
    y = (np.einsum("knv,vk->nv", base, w) + rng.normal(size=(n_images, N_VOXELS))).astype(np.float32)

    def per_voxel():
        coef = np.empty((N_VOXELS, k))
        for v in range(N_VOXELS):
            coef[v] = LinearRegression().fit(base[:, :, v].T, y[:, v]).coef_
        return coef

    ours = best_of(lambda: fit_ensemble(base, y), 3)
    t0 = time.perf_counter()
    ref = per_voxel()
    theirs = time.perf_counter() - t0
    np.testing.assert_allclose(fit_ensemble(base, y)[0], ref, atol=1e-5)
    return {"what": f"voxelwise ensemble (K={k} base models + bias), {n_images:,} images x {N_VOXELS:,} voxels",
            "ours": "nrf.ensemble.fit_ensemble (one batched solve)",
            "authors": "one sklearn LinearRegression per voxel", "ours_s": ours, "authors_s": theirs}


class _CachedShapes:
    """An extractor that returns random features of a real extractor's shapes,
    so a paper-size cache is written through the cache's own writer without
    running the network over every image."""

    def __init__(self, name, layers, shapes, seed=0):
        self.name, self.layers, self.shapes = name, layers, shapes
        self.rng = np.random.default_rng(seed)

    def extract(self, images):
        n = len(images)
        return {k: self.rng.normal(size=(n, *s)).astype(np.float16 if k.startswith("tokens") else np.float32)
                for k, s in self.shapes.items()}


def bench_features(rng, work: Path, n_images: int = 2_000, batches: int = 3, device: str = "cpu",
                   which=("filterbank", "clip_vitb16")) -> list[dict]:
    """Per training batch of 32 images: cached features vs an extractor rerun."""
    # each extractor on the images it serves: the simulator's 64 x 64 (default
    # image_size) for the filter bank, NSD's 425 x 425 RGB for CLIP
    sizes = {"filterbank": 64, "clip_vitb16": 425}
    for name in which:
        with h5py.File(work / f"stimuli_{name}.hdf5", "w") as f:
            size = sizes[name]
            d = f.create_dataset("imgBrick", shape=(n_images, size, size, 3), dtype=np.uint8,
                                 chunks=(1, size, size, 3))
            for i in range(0, n_images, 100):
                d[i : i + 100] = rng.integers(0, 256, size=(min(100, n_images - i), size, size, 3), dtype=np.uint8)
    ids = np.arange(n_images)
    rows = []
    extractors = {
        "filterbank": ("filterbank (simulated default)", {}),
        "clip_vitb16": (f"CLIP ViT-B/16 (paper) on {device}",
                        {"weights": None, "allow_random": True, "device": device, "batch_size": BATCH_IMAGES}),
    }
    torch.set_grad_enabled(False)
    for name in which:
        label, options = extractors[name]
        stimuli = work / f"stimuli_{name}.hdf5"
        extractor = get_extractor(name, **options)
        probe = extractor.extract(read_stimuli(stimuli, ids[:2]))
        cache = work / f"{name}.hdf5"
        writer = _CachedShapes(extractor.name, extractor.layers, {k: v.shape[1:] for k, v in probe.items()})
        extract_to_hdf5(writer, stimuli, ids, cache, batch_size=256, log=lambda m: None)
        draws = [np.sort(rng.choice(n_images, BATCH_IMAGES, replace=False)) for _ in range(batches)]
        t0 = time.perf_counter()
        in_memory = {k: torch.from_numpy(v) for k, v in read_features(cache, ids).items()}  # as train_nrf holds them
        load_s = time.perf_counter() - t0

        def recompute():
            for b in draws:
                extractor.extract(read_stimuli(stimuli, b))
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def from_file():
            for b in draws:
                read_features(cache, b)

        def from_memory():
            for b in draws:
                rows_t = torch.from_numpy(b)
                {k: v[rows_t] for k, v in in_memory.items()}

        recompute()  # warm-up (first-call allocations, file cache)
        theirs = best_of(recompute, 1 if device == "cpu" else 3) / batches
        shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in probe.items())
        for how, fn, note in [("read from the HDF5 cache every batch", from_file, ""),
                              ("cache held in memory, indexed every batch (as training does)", from_memory,
                               f" (+ {load_s:.1f} s once to read {n_images:,} images' features)")]:
            ours = best_of(fn, 3) / batches
            rows.append({"what": f"features of one {BATCH_IMAGES}-image training batch, {label}, "
                                 f"{sizes[name]} px images: {shapes}",
                         "ours": how + note, "authors": "extractor rerun on the stimuli every batch",
                         "ours_s": ours, "authors_s": theirs})
    return rows


def _ratio(x: float) -> str:
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=["pearson", "ensemble", "features"])
    parser.add_argument("--device", default="cpu", help="where the CLIP extractor runs")
    parser.add_argument("--feature-images", type=int, default=2_000, help="images in the features benchmark")
    parser.add_argument("--extractors", nargs="*", default=["filterbank", "clip_vitb16"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    if "pearson" in args.only:
        rows.append(bench_pearson(rng))
    if "ensemble" in args.only:
        rows.append(bench_ensemble(rng))
    if "features" in args.only:
        with tempfile.TemporaryDirectory(prefix="nrf-bench-") as work:
            rows += bench_features(rng, Path(work), args.feature_images, device=args.device,
                                   which=args.extractors)
    for r in rows:
        r["speed_up"] = r["authors_s"] / r["ours_s"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs visible, numpy {np.__version__}, "
               f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
               f"load average {os.getloadavg()[0]:.1f} at the start")
    lines = [f"Measured {date} on {machine}.", "",
             "| work | ours | authors' way | ours (s) | authors' (s) | speed-up |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['ours']} | {r['authors']} | {r['ours_s']:.3g} | {r['authors_s']:.3g} | "
                     f"**{_ratio(r['speed_up'])}** |")
    lines += ["", "Times are per call (best of 3 for ours); ratios are within this run."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"date": date, "machine": machine, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
