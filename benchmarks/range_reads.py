"""Old against new reader of NSD betas and stimuli by HTTP range requests, in one run.

"old" is the hand-written reader this project used until commit ``OLD_REV``
(``nrf.data.http.RangeReader`` + ``nrf.data.remote_hdf5.read_points``: its own
B-tree walk, merged ranges fetched by 8 threads), extracted from git history
into the work folder (never into the repository) and imported from there.
"new" is h5py over an fsspec HTTP file with a block cache
(``nrf.data.http.open_remote`` + ``nrf.data.fetch_nsd.read_voxels``), what
``fetch_session_betas`` runs today. Both read the same files from the same
server; their values are checked equal.

1. A betas twin with NSD's real geometry, (750, 83, 104, 81) int16 (subj01's
   func1pt8mm grid), one voxel per chunk (version-1 B-tree index) and
   contiguous; 15,724 voxels (subj01's nsdgeneral count) of a synthetic
   nsdgeneral (a posterior cortical ribbon), since the real mask is not
   available offline.
2. A stimuli brick of NSD's image size (425 x 425 x 3 uint8, contiguous) with
   2,000 images (NSD's has 73,000: 37 GB), reading 14% of the rows (a subject
   sees 10,000 of the 73,000 images) in batches of 64.

Each is read at 0 and 20 ms of latency added by ``tests/http_server.py`` on
127.0.0.1 before every response. Requests and bytes are counted exactly (by
the clients, checked against the server's log); times are indicative only
(one machine, loopback, 2 shared cores).

    python benchmarks/range_reads.py --workdir /tmp/nrf_range_bench

Results: benchmarks/range_reads.md.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the test server

from http_server import RangeServer  # noqa: E402

from nrf.data import nsd_layout  # noqa: E402
from nrf.data.fetch_nsd import (  # noqa: E402
    BLOCK_SIZE,
    CACHE_BYTES,
    STIMULI_BATCH,
    STIMULI_READAHEAD,
    read_rows,
    read_voxels,
)
from nrf.data.http import HttpClient, open_remote  # noqa: E402

OLD_REV = "229a348"  # the last commit with the hand-written reader
DOWNLOAD_CODE = ["src/nrf/data/http.py", "src/nrf/data/remote_hdf5.py", "src/nrf/data/fetch_nsd.py"]
GRID = (81, 104, 83)  # (X, Y, Z), subj01 func1pt8mm
TRIALS = 750
N_VOXELS = nsd_layout.NSD_NSDGENERAL_VOXELS["subj01"]
LATENCIES_MS = (0, 20)


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


def old_reader(work: Path):
    """The old modules from ``OLD_REV``, written to ``work/old_reader`` and imported as old_http, old_remote_hdf5."""
    folder = work / "old_reader"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("http", "remote_hdf5"):
        text = subprocess.run(["git", "show", f"{OLD_REV}:src/nrf/data/{name}.py"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout
        (folder / f"old_{name}.py").write_text(text.replace("from nrf.data.http import", "from old_http import"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("old_http"), importlib.import_module("old_remote_hdf5")


def line_counts() -> dict:
    """Lines of the download code at ``OLD_REV`` and in the working tree."""
    def count(text):
        return len(text.splitlines())

    old = {p: count(subprocess.run(["git", "show", f"{OLD_REV}:{p}"], cwd=REPO, check=True, capture_output=True,
                                   text=True).stdout) for p in DOWNLOAD_CODE}
    new = {p: count((REPO / p).read_text()) if (REPO / p).exists() else 0 for p in DOWNLOAD_CODE}
    return {"old": old, "new": new, "old_total": sum(old.values()), "new_total": sum(new.values())}


def read_old(old, url, dataset, axes, points, batches=None) -> tuple[np.ndarray, dict]:
    """The old reader with its defaults (256 KiB gaps, <= 256 requests a batch, 8 threads)."""
    old_http, old_rh = old
    client = old_http.HttpClient(timeout=60)
    t0 = time.monotonic()
    parts = []
    with old_rh.open_remote(url, client=client) as (f, reader):
        for sel in batches or [slice(None)]:
            parts.append(old_rh.read_points(reader, f[dataset], axes, points[sel],
                                            max_requests=256 if batches is None else None)[0])
        size = reader.size
    client.close()
    return np.concatenate(parts), {**client.traffic.snapshot(), "seconds": time.monotonic() - t0, "size": size}


def read_new(url, dataset, reader, points, batches=None, **kw) -> tuple[np.ndarray, dict]:
    client = HttpClient(timeout=60)
    t0 = time.monotonic()
    with open_remote(url, client=client, **kw) as (f, size):
        out = np.concatenate([reader(f[dataset], points[sel]) for sel in batches or [slice(None)]])
    client.close()
    return out, {**client.traffic.snapshot(), "seconds": time.monotonic() - t0, "size": size}


def compare(server, label, old_fn, new_fn) -> dict:
    """Run both readers on a fresh server log; check values and the clients' counts."""
    server.reset_log()
    a, old = old_fn()
    assert old["requests"] == len(server.requests) and old["bytes"] == server.bytes_sent, (old, server.bytes_sent)
    server.reset_log()
    b, new = new_fn()
    assert new["requests"] == len(server.requests) and new["bytes"] == server.bytes_sent, (new, server.bytes_sent)
    np.testing.assert_array_equal(a, b)
    row = {"case": label, "latency_ms": round(server.delay * 1000), "old": old, "new": new,
           "requests_ratio": new["requests"] / old["requests"], "bytes_ratio": new["bytes"] / old["bytes"]}
    print(fmt_row(row), flush=True)
    return row


HEADER = ("| case | latency | old requests | new requests | new / old | old MB | new MB | new / old | "
          "old s | new s |\n|---|---|---|---|---|---|---|---|---|---|")


def fmt_row(r) -> str:
    o, n = r["old"], r["new"]
    return (f"| {r['case']} | {r['latency_ms']} ms | {o['requests']:,} | {n['requests']:,} | "
            f"{r['requests_ratio']:.2f}× | {o['bytes'] / 1e6:,.1f} | {n['bytes'] / 1e6:,.1f} | "
            f"{r['bytes_ratio']:.2f}× | {o['seconds']:.1f} | {n['seconds']:.1f} |")


def voxel_by_voxel(url, points, n_voxels=4) -> dict:
    """The chunked path of ``read_voxels`` (voxel by voxel in file order) on a contiguous twin: the first voxels."""
    order = np.lexsort(points.T[::-1])[:n_voxels]
    client = HttpClient(timeout=60)
    t0 = time.monotonic()
    with open_remote(url, client=client, block_size=BLOCK_SIZE, cache_bytes=CACHE_BYTES) as (f, _):
        for k, j, i in points[order]:
            f["betas"][:, k, j, i]
    return {**client.traffic.snapshot(), "seconds": time.monotonic() - t0, "voxels": n_voxels}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="/tmp/nrf_range_bench")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    old = old_reader(work)
    results = {"old_rev": OLD_REV, "lines": line_counts(), "block_size": BLOCK_SIZE, "cache_bytes": CACHE_BYTES,
               "rows": []}
    print(results["lines"], flush=True)

    brain, ijk = synthetic_masks()
    kji = ijk[:, ::-1].copy()  # twin index [:, k, j, i]
    twins = work / "real"
    twins.mkdir(exist_ok=True)
    for layout in ("per_voxel", "contiguous"):
        if not (twins / f"{layout}.hdf5").exists():
            print(f"writing {layout} twin ...", flush=True)
            results[f"{layout}_write_s"] = round(write_twin(twins / f"{layout}.hdf5", brain, layout), 1)
        results[f"{layout}_twin_bytes"] = (twins / f"{layout}.hdf5").stat().st_size
    results.update(n_voxels=len(ijk), needed_bytes=len(ijk) * TRIALS * 2,
                   nifti_gz_bytes_estimate=estimate_nifti_gz(brain))

    stim = work / "stimuli"
    stim.mkdir(exist_ok=True)
    n_images, shape = 2000, (2000, 425, 425, 3)
    if not (stim / "nsd_stimuli.hdf5").exists():
        rng = np.random.default_rng(0)
        with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
            d = f.create_dataset("imgBrick", shape=shape, dtype=np.uint8)
            for s in range(0, n_images, 100):
                d[s : s + 100] = rng.integers(0, 256, (100, *shape[1:]), dtype=np.uint8)
    ids = np.sort(np.random.default_rng(1).choice(n_images, round(n_images * 10_000 / 73_000), replace=False))
    batches = [slice(s, s + STIMULI_BATCH) for s in range(0, len(ids), STIMULI_BATCH)]
    results["stimuli"] = {"shape": shape, "rows_read": len(ids), "needed_bytes": len(ids) * int(np.prod(shape[1:]))}

    for latency in LATENCIES_MS:
        with RangeServer(twins, delay=latency / 1000, etags=False) as srv:  # no MD5 of 1 GB files
            for layout in ("per_voxel", "contiguous"):
                url = f"{srv.url}/{layout}.hdf5"
                results["rows"].append(compare(
                    srv, f"betas, {layout}",
                    lambda: read_old(old, url, "betas", (1, 2, 3), kji),
                    lambda: read_new(url, "betas", read_voxels, kji, block_size=BLOCK_SIZE, cache_bytes=CACHE_BYTES)))
            if latency == 0:
                for block in (256 << 10, 4 << 20):  # the block size trade-off, new reader only
                    _, d = read_new(f"{srv.url}/per_voxel.hdf5", "betas", read_voxels, kji, block_size=block,
                                    cache_bytes=CACHE_BYTES)
                    results.setdefault("block_sizes", {})[block] = d
                    print("block", block >> 10, "KiB:", d, flush=True)
                results["contiguous_voxel_by_voxel"] = voxel_by_voxel(f"{srv.url}/contiguous.hdf5", kji)
                print("contiguous voxel by voxel:", results["contiguous_voxel_by_voxel"], flush=True)
        with RangeServer(stim, delay=latency / 1000, etags=False) as srv:
            url = f"{srv.url}/nsd_stimuli.hdf5"
            results["rows"].append(compare(
                srv, "stimuli rows",
                lambda: read_old(old, url, "imgBrick", (0,), ids[:, None], batches),
                lambda: read_new(url, "imgBrick", read_rows, ids, batches, block_size=STIMULI_READAHEAD,
                                 cache_type="bytes")))
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print("\n" + HEADER + "\n" + "\n".join(fmt_row(r) for r in results["rows"]))
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
