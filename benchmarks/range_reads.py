"""Bytes and requests to read one session's nsdgeneral voxels by HTTP range requests.

Compares :func:`nrf.data.remote_hdf5.read_points` on a betas twin with
downloading the whole file, on

1. a twin with NSD's real geometry, (750, 83, 104, 81) int16 (subj01's
   func1pt8mm grid), chunked one voxel per chunk as NSD's reportedly is, and
   the same data stored contiguously; 15,724 voxels (subj01's nsdgeneral
   count) of a synthetic nsdgeneral (a posterior cortical ribbon), since the
   real mask is not available offline;
2. a twin of the simulated dataset's size (``simulate_nsd_tree`` defaults);
3. a stimuli brick of NSD's image size (425 x 425 x 3 uint8, contiguous)
   with 2,000 images (NSD's has 73,000: 37 GB), reading 14% of the rows (a
   subject sees 10,000 of the 73,000 images).

The files are served by ``tests/http_server.py`` on 127.0.0.1 with an
emulated latency per request (``--latency-ms``); the counts of requests and
bytes are exact, the times are indicative only (one machine, loopback).
The whole ``.nii.gz`` size is estimated by gzipping a sample of volumes of
the same synthetic betas (the real compressibility may differ).

    python benchmarks/range_reads.py --workdir /tmp/nrf_range_bench

Results: benchmarks/range_reads.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test server

from http_server import RangeServer  # noqa: E402

from nrf.data import nsd_layout  # noqa: E402
from nrf.data.http import HttpClient  # noqa: E402
from nrf.data.remote_hdf5 import open_remote, read_points  # noqa: E402

GRID = (81, 104, 83)  # (X, Y, Z), subj01 func1pt8mm
TRIALS = 750
N_VOXELS = nsd_layout.NSD_NSDGENERAL_VOXELS["subj01"]
SETTINGS = [  # (max_gap, max_requests)
    (0, None),
    (16 << 10, None),
    (64 << 10, None),
    (64 << 10, 1024),
    (64 << 10, 256),
    (256 << 10, 256),  # the default
    (1 << 20, 256),
    (4 << 20, 64),
]
# A model of fetching from S3 (for the "model s" column): each request costs
# LATENCY_S, WORKERS requests in flight at once; bytes arrive at BANDWIDTH.
LATENCY_S, WORKERS, BANDWIDTH = 0.040, 8, 100e6


def model_seconds(requests: int, nbytes: int) -> float:
    return requests * LATENCY_S / WORKERS + nbytes / BANDWIDTH


def synthetic_masks(grid=GRID, n_voxels=N_VOXELS, seed=0):
    """A brain ellipsoid and an nsdgeneral-like posterior cortical ribbon of exactly ``n_voxels``.

    Returns ``brain`` (X, Y, Z) bool and ``voxel_ijk`` (n_voxels, 3) in C-order.
    """
    X, Y, Z = grid
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    r = np.sqrt(((i - 40) / 36) ** 2 + ((j - 50) / 48) ** 2 + ((k - 38) / 34) ** 2)
    brain = r < 1.0
    rng = np.random.default_rng(seed)
    # "folding": a smooth random depth offset, so the ribbon is not a clean shell
    coarse = rng.standard_normal((X // 6 + 2, Y // 6 + 2, Z // 6 + 2))
    fold = coarse[i // 6, j // 6, k // 6] * 0.03
    posterior = (j < 0.42 * Y) | ((j < 0.6 * Y) & (k < 0.4 * Z))  # occipital + ventral temporal
    score = np.abs(r - 0.93 + fold)
    score[~(brain & posterior)] = np.inf
    flat = np.argsort(score, axis=None, kind="stable")[:n_voxels]
    mask = np.zeros(grid, bool)
    mask.flat[flat] = True
    return brain, np.stack(np.nonzero(mask), axis=1).astype(np.int32)


def write_twin(path: Path, brain, layout: str, seed=0) -> float:
    """(750, Z, Y, X) int16 betas, noise in the brain and 0 outside, written slab by slab."""
    X, Y, Z = GRID
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    with h5py.File(path, "w") as f:
        kw = {"chunks": (TRIALS, 1, 1, 1)} if layout == "per_voxel" else {}
        d = f.create_dataset("betas", shape=(TRIALS, Z, Y, X), dtype="<i2", **kw)
        for z in range(Z):
            slab = np.clip(rng.normal(0, 600, (TRIALS, Y, X)), -32768, 32767).astype("<i2")
            slab *= brain[:, :, z].T[None]
            d[:, z] = slab
    return time.monotonic() - t0


def estimate_nifti_gz(brain, n_volumes=25, seed=0) -> int:
    """Size of the (X, Y, Z, 750) int16 .nii.gz, from gzipping ``n_volumes`` volumes (level 6)."""
    rng = np.random.default_rng(seed + 1)
    vols = np.clip(rng.normal(0, 600, (n_volumes, *GRID)), -32768, 32767).astype("<i2") * brain[None]
    data = np.ascontiguousarray(np.moveaxis(vols, 0, -1)).tobytes(order="F")
    return int(len(gzip.compress(data, compresslevel=6)) * TRIALS / n_volumes) + 352


def measure(url, points, max_gap, max_requests, workers=8, whole_below=0) -> dict:
    """One session's read; counts include opening the file (HEAD, superblock, headers)."""
    client = HttpClient(timeout=60)
    t0 = time.monotonic()
    with open_remote(url, client=client, whole_below=whole_below) as (f, reader):
        opened = client.traffic.snapshot()
        _, st = read_points(reader, f["betas"], (1, 2, 3), points, max_gap=max_gap,
                            max_requests=max_requests, workers=workers)
        size = reader.size
    client.close()
    total = client.traffic.snapshot()
    d = st.as_dict()
    d.update(seconds=round(time.monotonic() - t0, 2), whole_file_bytes=size, max_gap=max_gap,
             max_requests=max_requests, requests=total["requests"], bytes=total["bytes"],
             metadata_requests=st.metadata_requests + opened["requests"],
             metadata_bytes=st.metadata_bytes + opened["bytes"])
    d["model_seconds"] = round(model_seconds(d["requests"], d["bytes"]), 1)
    return d


def row(name, d) -> str:
    gap = "-" if d["max_gap"] is None else f"{d['max_gap'] >> 10} KiB"
    mr = "-" if d["max_requests"] is None else str(d["max_requests"])
    return (f"| {name} | {gap} | {mr} | {d['requests']:,} | {d['bytes'] / 1e6:,.1f} | "
            f"{d['metadata_requests']:,} / {d['metadata_bytes'] / 1e6:,.1f} | {d['data_ranges']:,} | "
            f"{100 * d['bytes'] / d['whole_file_bytes']:.1f}% | {d['seconds']:.1f} | {d['model_seconds']:.1f} |")


HEADER = ("| twin | max_gap | max_requests | requests | MB received | open + index: requests / MB | "
          "data requests | of whole twin | s (loopback) | model s |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="/tmp/nrf_range_bench")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="emulated latency per request")
    ap.add_argument("--only", choices=["real", "simulated", "stimuli"], action="append",
                    help="run only these parts (repeatable); default all")
    args = ap.parse_args(argv)
    parts = set(args.only or ["real", "simulated", "stimuli"])
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["latency_ms"] = args.latency_ms
    lines = []

    if "real" in parts:
        results["real_geometry"] = {}
        brain, ijk = synthetic_masks()
        points = ijk[:, ::-1]  # twin index [:, k, j, i]
        twin_dir = work / "real"
        twin_dir.mkdir(exist_ok=True)
        for layout in ("per_voxel", "contiguous"):
            path = twin_dir / f"{layout}.hdf5"
            if not path.exists():
                print(f"writing {path} ...", flush=True)
                results["real_geometry"][f"{layout}_write_s"] = round(write_twin(path, brain, layout), 1)
        nii = estimate_nifti_gz(brain)
        results["real_geometry"].update(n_voxels=len(ijk), brain_voxels=int(brain.sum()),
                                        nifti_gz_bytes_estimate=nii,
                                        needed_bytes=len(ijk) * TRIALS * 2)
        lines += [f"Real geometry: grid {GRID}, {TRIALS} trials, {len(ijk):,} voxels "
                  f"({len(ijk) * TRIALS * 2 / 1e6:.1f} MB of values); brain {int(brain.sum()):,} voxels; "
                  f"estimated .nii.gz {nii / 1e6:,.0f} MB (model {model_seconds(2, nii):.1f} s + gunzip).",
                  "", HEADER]
        with RangeServer(twin_dir, delay=args.latency_ms / 1000) as srv:
            for layout in ("per_voxel", "contiguous"):
                size = (twin_dir / f"{layout}.hdf5").stat().st_size
                results["real_geometry"][f"{layout}_twin_bytes"] = size
                settings = SETTINGS if layout == "per_voxel" else [(256 << 10, 256), (64 << 10, None)]
                for gap, mr in settings:
                    d = measure(f"{srv.url}/{layout}.hdf5", points, gap, mr)
                    results["real_geometry"].setdefault(layout, []).append(d)
                    lines.append(row(layout, d))
                    print(lines[-1], flush=True)

    if "simulated" in parts:
        lines += simulated_twin(work, args, results)
    if "stimuli" in parts:
        lines += stimuli(work, args, results)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))
    print(f"\nresults: {out}")


def simulated_twin(work, args, results) -> list[str]:
    from nrf.data import fetch_nsd
    from nrf.data.simulate import simulate_nsd_tree

    results["simulated"] = {}
    lines = []
    sim = work / "simulated"
    if not (sim / nsd_layout.betas("subj01", 1, "hdf5")).exists():
        simulate_nsd_tree(sim, subjects=("subj01",), seed=0, hdf5_twins=True)
    ijk, grid = fetch_nsd.session_voxels(sim, "subj01")
    key = nsd_layout.betas("subj01", 1, "hdf5")
    lines += ["", f"Simulated (defaults): grid {grid}, {len(ijk):,} voxels, twin "
              f"{(sim / key).stat().st_size / 1e6:.1f} MB, .nii.gz "
              f"{(sim / nsd_layout.betas('subj01', 1)).stat().st_size / 1e6:.2f} MB.", "", HEADER]
    with RangeServer(sim, delay=args.latency_ms / 1000) as srv:
        for gap, mr, whole in [(0, None, 0), (64 << 10, None, 0), (256 << 10, 256, 0), (256 << 10, 256, 4 << 20)]:
            d = measure(f"{srv.url}/{key}", ijk[:, ::-1], gap, mr, whole_below=whole)
            d["whole_below"] = whole
            results["simulated"].setdefault("runs", []).append(d)
            lines.append(row(f"simulated (whole_below {whole >> 20} MiB)", d))
            print(lines[-1], flush=True)
    results["simulated"].update(n_voxels=len(ijk), grid=list(grid), twin_bytes=(sim / key).stat().st_size,
                                nifti_gz_bytes=(sim / nsd_layout.betas("subj01", 1)).stat().st_size)
    return lines


def stimuli(work, args, results, n_images=2000, fraction=10_000 / 73_000, seed=0) -> list[str]:
    """Rows of a contiguous (n, 425, 425, 3) uint8 brick, read in batches as fetch_stimuli_subset does."""
    from nrf.data.fetch_nsd import STIMULI_BATCH

    folder = work / "stimuli"
    folder.mkdir(exist_ok=True)
    path = folder / "nsd_stimuli.hdf5"
    shape = (n_images, 425, 425, 3)
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        rng = np.random.default_rng(seed)
        with h5py.File(path, "w") as f:
            d = f.create_dataset("imgBrick", shape=shape, dtype=np.uint8)
            for s in range(0, n_images, 100):
                d[s : s + 100] = rng.integers(0, 256, (min(100, n_images - s), *shape[1:]), dtype=np.uint8)
    ids = np.sort(np.random.default_rng(seed + 1).choice(n_images, int(round(fraction * n_images)),
                                                         replace=False))
    client = HttpClient(timeout=60)
    t0 = time.monotonic()
    with RangeServer(folder, delay=args.latency_ms / 1000) as srv:
        with open_remote(f"{srv.url}/nsd_stimuli.hdf5", client=client) as (f, reader):
            for s in range(0, len(ids), STIMULI_BATCH):
                read_points(reader, f["imgBrick"], (0,), ids[s : s + STIMULI_BATCH, None], max_requests=None)
            size = reader.size
    client.close()
    total = client.traffic.snapshot()
    row_bytes = int(np.prod(shape[1:]))
    d = {"n_images": n_images, "rows_read": len(ids), "requests": total["requests"], "bytes": total["bytes"],
         "needed_bytes": len(ids) * row_bytes, "file_bytes": size, "seconds": round(time.monotonic() - t0, 1),
         "model_seconds": round(model_seconds(total["requests"], total["bytes"]), 1)}
    results["stimuli"] = d
    per = 73_000 / n_images
    return ["", f"Stimuli: contiguous brick {shape}, {len(ids)} rows ({100 * fraction:.1f}%): "
            f"{d['requests']:,} requests, {d['bytes'] / 1e6:,.1f} MB received for "
            f"{d['needed_bytes'] / 1e6:,.1f} MB of images, of a {size / 1e9:.2f} GB file; "
            f"{d['seconds']} s loopback, model {d['model_seconds']} s. Scaled to NSD's 73,000 images "
            f"(x{per:.1f}): ~{d['requests'] * per:,.0f} requests, ~{d['bytes'] * per / 1e9:.1f} GB "
            f"of a {size * per / 1e9:.0f} GB file."]


if __name__ == "__main__":
    main()
