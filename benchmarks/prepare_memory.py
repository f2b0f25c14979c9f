"""Peak memory of preparing one paper-size subject.

Builds a synthetic NSD-layout tree at the paper's size, subj01-like:
40 sessions x 750 trials at 15,724 nsdgeneral voxels on the 81 x 104 x 83
func1pt8mm grid, betas in the compact per-session format the pipeline keeps
for real NSD (int16, ROI voxels only; ~0.94 GB in all), masks, MNI transform,
ROI atlases and an expdesign with 10,000 images per subject of which 1,000 are
shared. Then runs :func:`nrf.data.prepare.prepare_subject` on it in a fresh
child process and records that process's peak resident memory
(``ru_maxrss``). Target: < 4 GB (issue 12, item 5).

    python benchmarks/prepare_memory.py [--work /tmp/nrf-prepare-memory] [--out benchmarks/prepare_memory.md]

The tree is kept in --work, so a rerun only repeats the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.io

from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key, write_compact_betas

sys.path.insert(0, str(Path(__file__).resolve().parent))
from range_reads import GRID, N_VOXELS, TRIALS, synthetic_masks  # noqa: E402  (same masks as the range-read twin)

SUBJECT = "subj01"
SESSIONS = 40
N_IMAGES, N_SHARED = 10_000, 1_000  # per subject, as in NSD


def _nifti(data, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    nib.save(nib.Nifti1Image(data, affine), path)


def build_tree(root: Path, seed: int = 0) -> None:
    """Write the synthetic paper-size tree under ``root`` (skipped if complete)."""
    done = root / "complete"
    if done.exists():
        return
    rng = np.random.default_rng(seed)
    brain, ijk = synthetic_masks(GRID, N_VOXELS, seed)
    mask = np.zeros(GRID, np.int16)
    mask[tuple(ijk.T)] = 1
    _nifti(brain.astype(np.int16), root / nsd_layout.brainmask(SUBJECT))
    _nifti(mask, root / nsd_layout.roi(SUBJECT, "nsdgeneral"))
    for atlas in nsd_layout.ROI_ATLASES:
        _nifti(np.zeros(GRID, np.int16), root / nsd_layout.roi(SUBJECT, atlas))
    _nifti(rng.uniform(0, 1, GRID).astype(np.float32), root / nsd_layout.ncsnr(SUBJECT))
    # 1-based MNI 1 mm indices: a plain scaling of the func grid into the box
    grid_idx = np.stack(np.meshgrid(*[np.arange(n) for n in GRID], indexing="ij"), axis=-1)
    _nifti((grid_idx * 1.8 + 10.0).astype(np.float32), root / nsd_layout.mni_transform(SUBJECT))

    # NSD's design: each of 10,000 images 3 times over 30,000 trials, the
    # first 1,000 (shared) images included
    order = np.concatenate([rng.permutation(N_IMAGES) + 1 for _ in range(3)])
    subjectim = np.stack([rng.permutation(73_000)[:N_IMAGES] + 1 for _ in range(8)])
    subjectim[:, :N_SHARED] = subjectim[0, :N_SHARED]  # the shared images are the same for all
    expdesign = root / nsd_layout.EXPDESIGN
    expdesign.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(expdesign, {"masterordering": order[None], "subjectim": subjectim,
                                 "sharedix": subjectim[0, :N_SHARED][None]})

    for s in range(1, SESSIONS + 1):
        betas = np.clip(rng.normal(0, 600, (TRIALS, N_VOXELS)), -32768, 32767).astype(np.int16)
        key = compact_key(nsd_layout.betas(SUBJECT, s))
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        write_compact_betas(root / key, betas, ijk, source_key=nsd_layout.betas(SUBJECT, s), grid_shape=GRID)
    done.write_text("ok\n")


CHILD = """
import resource, sys, time
from nrf.data.prepare import prepare_subject
root, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
prepared = prepare_subject(root, "subj01", sessions=list(range(1, 41)), protocol="paper",
                           betas_format="compact", out_path=out, log=lambda m: None)
seconds = time.perf_counter() - t0
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, peak_kib, prepared.train.responses.shape[0], prepared.test.responses.shape[0],
      prepared.coords.shape[0])
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nrf-prepare-memory"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_tree(args.work / "tree")
    build_s = time.perf_counter() - t0
    out = args.work / "prepared.hdf5"
    res = subprocess.run([sys.executable, "-c", CHILD, str(args.work / "tree"), str(out)],
                         capture_output=True, text=True, check=True)
    seconds, peak_kib, n_train, n_test, n_vox = res.stdout.split()
    peak_gb = int(peak_kib) * 1024 / 1e9
    betas_gb = SESSIONS * TRIALS * N_VOXELS * 2 / 1e9
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
                   f"{platform.system()} {platform.release()}",
        "sessions": SESSIONS, "trials_per_session": TRIALS, "voxels": int(n_vox),
        "train_images": int(n_train), "test_images": int(n_test),
        "betas_on_disk_gb": round(betas_gb, 2), "prepare_seconds": round(float(seconds), 1),
        "peak_rss_gb": round(peak_gb, 2), "target_gb": 4.0, "tree_build_seconds": round(build_s, 1),
    }
    text = "\n".join([
        f"# Peak memory of preparing a paper-size subject ({result['date']})",
        "",
        f"Machine: {result['machine']}. `python benchmarks/prepare_memory.py`.",
        "",
        "| sessions x trials | voxels | images (train / test) | int16 betas read | prepare (s) | peak RSS | target |",
        "|---|---|---|---|---|---|---|",
        f"| {SESSIONS} x {TRIALS} | {int(n_vox):,} | {int(n_train):,} / {int(n_test):,} | "
        f"{betas_gb:.2f} GB | {float(seconds):.1f} | **{peak_gb:.2f} GB** | < 4 GB |",
        "",
        "Peak RSS is the child process's `ru_maxrss` (Python, numpy, h5py and nibabel included).",
        "Sessions are streamed one at a time; what stays in memory is the per-image running sum",
        f"({int(n_train) + int(n_test):,} x {int(n_vox):,} float32 = "
        f"{(int(n_train) + int(n_test)) * int(n_vox) * 4 / 1e9:.2f} GB) plus one session.",
        "",
        "```json", json.dumps(result, indent=1), "```",
    ])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if peak_gb >= 4.0:
        sys.exit(f"peak RSS {peak_gb:.2f} GB is over the 4 GB target")


if __name__ == "__main__":
    main()
