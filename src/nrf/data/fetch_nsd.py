"""Fetch the real Natural Scenes Dataset into a local tree in NSD's layout.

Only what the configured subjects and sessions need, from NSD's public bucket
(anonymous HTTPS), under ``root`` (``resources/nsd``): whole files by
:func:`fetch_key` (atomic, resumed, verified: :func:`nrf.data.http.download`);
one session's nsdgeneral voxels (or the probe target's ROI voxels outside
nsdgeneral, :mod:`nrf.data.roi_voxels`) by :func:`fetch_session_betas`, read by h5py
from the ``.hdf5`` twin over HTTP ranges (or extracted from the whole
``.nii.gz``) into the compact file (:mod:`nrf.data.compact_betas`); the images
the subjects saw by :func:`fetch_stimuli_subset`, read by range from
``nsd_stimuli.hdf5`` (never its 37 GB) into a subset file (docs/CONTRACTS.md).
Which keys a run needs: :func:`nsd_keys`; which images: :func:`nrf.data.nsd_tree.images_seen`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import closing, nullcontext
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5
from nrf.data import compact_betas, nsd_layout, nsd_tree
from nrf.data.http import HttpClient, download, key_url, open_remote

log = logging.getLogger(__name__)

BETAS_SOURCES = ("hdf5_ranges", "nifti")
# Block cache of the betas reads: 1 MiB blocks (a session: ~450 requests,
# benchmarks/range_reads.md), at most 256 MiB held.
BLOCK_SIZE = 1 << 20
CACHE_BYTES = 256 << 20
# Images per batch of stimuli reads (NSD: 64 x 542 KB = 35 MB in memory), and
# the read-ahead of each stimuli request (HDF5's small metadata reads).
STIMULI_BATCH = 64
STIMULI_READAHEAD = 64 << 10
# Contiguous betas are read as whole volumes, this many bytes at a time.
_SLAB_BYTES = 64 << 20


class UnsupportedLayout(RuntimeError):
    """A dataset that h5py cannot read over HTTP (external files, a missing filter)."""


# ---------------------------------------------------------------- keys


def nsd_keys(subjects) -> list[str]:
    """Every whole-file key of a run: the experiment design and stimulus info, and each subject's
    brainmask, nsdgeneral, ROI atlases, MNI transform and ncsnr (betas and stimuli: their own functions)."""
    keys = [nsd_layout.EXPDESIGN, nsd_layout.STIM_INFO]
    for s in subjects:
        keys += [nsd_layout.brainmask(s), nsd_layout.roi(s, "nsdgeneral"),
                 *[nsd_layout.roi(s, atlas) for atlas in nsd_layout.ROI_ATLASES],
                 nsd_layout.mni_transform(s), nsd_layout.ncsnr(s)]
    return keys


# ---------------------------------------------------------------- whole files


def fetch_key(base_url: str, key: str, root, *, client: HttpClient | None = None) -> dict:
    """Download ``base_url/key`` to ``root/key`` (atomic, resumed, verified; kept if it matches the server).

    Returns ``{key, path, size, requests, bytes, status, seconds}`` (status: downloaded, resumed or
    present); raises :class:`nrf.data.http.RemoteNotFoundError` naming the key on 403/404.
    """
    if key == nsd_layout.STIMULI:
        raise ValueError(f"{key}: 37 GB — use fetch_stimuli_subset for the images a run needs")
    t0 = time.monotonic()
    with nullcontext(client) if client else closing(HttpClient()) as c:
        res = download(key_url(base_url, key), Path(root) / key, client=c, name=key)
    return {"key": key, "path": str(res.path), "size": res.size, "requests": res.requests,
            "bytes": res.bytes, "status": res.status, "seconds": round(time.monotonic() - t0, 3)}


# ---------------------------------------------------------------- remote reads


def check_readable(dset: h5py.Dataset) -> None:
    """Raise :class:`UnsupportedLayout` if h5py cannot read ``dset`` over HTTP."""
    dcpl = dset.id.get_create_plist()
    if dcpl.get_external_count() or dset.is_virtual:
        raise UnsupportedLayout(f"{dset.name}: its values live in other files, which a remote read cannot reach")
    for i in range(dcpl.get_nfilters()):
        code, _, _, fname = dcpl.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            raise UnsupportedLayout(f"{dset.name}: chunks are filtered with {fname.decode(errors='replace')} "
                                    f"(filter {code}), which this HDF5 lacks")


def read_voxels(dset: h5py.Dataset, voxel_kji) -> np.ndarray:
    """``dset[:, k, j, i]`` of each voxel, read in file order.

    Chunked storage is read voxel by voxel in C-order of (k, j, i) (the order
    of the chunk index, and of the chunks in a file written slab by slab), so
    each block of chunks and index nodes is fetched once; contiguous storage
    holds a voxel's values one volume apart, so whole volumes are read.

    Parameters
    ----------
    dset : (n_trials, Z, Y, X)
    voxel_kji : (n_voxels, 3) int, (k, j, i) indices of ``dset``'s last three axes

    Returns
    -------
    (n_voxels, n_trials), ``dset``'s dtype in native byte order
    """
    kji = np.asarray(voxel_kji, dtype=np.int64).reshape(-1, 3)
    out = np.empty((len(kji), dset.shape[0]), dset.dtype.newbyteorder("="))
    if len(kji) and ((kji < 0) | (kji >= dset.shape[1:])).any():
        raise IndexError(f"{dset.name}: voxels out of bounds of {dset.shape[1:]}")
    order = np.lexsort(kji.T[::-1])
    if dset.chunks is None:
        k0, k1 = kji[:, 0].min(initial=0), kji[:, 0].max(initial=-1) + 1
        step = max(1, _SLAB_BYTES // max(1, (k1 - k0) * dset[0, 0].nbytes))
        for t in range(0, dset.shape[0], step):
            out[:, t : t + step] = dset[t : t + step, k0:k1][:, kji[:, 0] - k0, kji[:, 1], kji[:, 2]].T
        return out
    for v in order:  # one voxel a read: h5py's fancy indexing (dset[:, k, j, [i...]]) is ~100x slower
        out[v] = dset[:, kji[v, 0], kji[v, 1], kji[v, 2]]
    return out


# ---------------------------------------------------------------- betas


def _write_stats(stats: dict, stats_path) -> None:
    if stats_path is not None:
        with atomic_output(stats_path) as tmp:
            tmp.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")


def fetch_session_betas(base_url: str, root, subject: str, session: int, voxel_ijk, grid_shape, *,
                        voxel_set: str = "nsdgeneral", source: str = "hdf5_ranges", fallback: bool = True,
                        keep_nifti: bool = True, client: HttpClient | None = None, block_size: int = BLOCK_SIZE,
                        cache_bytes: int = CACHE_BYTES, stats_path=None) -> dict:
    """Write one session's betas at ``voxel_ijk`` as the compact file; return what it cost.

    Parameters
    ----------
    session : 1-based
    voxel_ijk : (n_voxels, 3) int, (i, j, k) on the func grid, C-order (:func:`nrf.data.nsd_tree.subject_voxels`)
    grid_shape : (X, Y, Z) of the func grid
    voxel_set : the voxels' set, which names the compact file
        (``betas_sessionNN.{voxel_set}.hdf5``, nrf.data.compact_betas.VOXEL_SETS)
    source : ``"hdf5_ranges"`` reads only the voxels from the ``.hdf5`` twin;
        ``"nifti"`` downloads the whole ``.nii.gz`` (kept if ``keep_nifti``)
    fallback : with ``hdf5_ranges``, use ``nifti`` when h5py cannot read the
        twin remotely (:class:`UnsupportedLayout`)
    block_size, cache_bytes : the ranged reads' block size and cache bound, bytes
    stats_path : if given, the returned dict is also written there as JSON

    An existing compact file with the same voxels is kept (source "present").
    Returns a dict: source, path, n_voxels, n_trials, requests, bytes
    (received), whole_file_bytes (the file the method would otherwise
    download), seconds; for ranges also nifti_bytes (the ``.nii.gz``'s size).
    """
    if source not in BETAS_SOURCES:
        raise ValueError(f"source must be one of {BETAS_SOURCES}, got {source!r}")
    voxel_ijk = np.asarray(voxel_ijk, dtype=np.int32).reshape(-1, 3)
    grid_shape = tuple(int(s) for s in grid_shape)
    nifti_key = nsd_layout.betas(subject, session)
    out = Path(root) / compact_betas.compact_key(nifti_key, voxel_set)
    stats = {"subject": subject, "session": int(session), "path": str(out), "n_voxels": len(voxel_ijk),
             "voxel_set": voxel_set}
    if out.exists():
        try:
            if np.array_equal(compact_betas.read_compact_betas(out)[1], voxel_ijk):
                stats.update(source="present", requests=0, bytes=0, whole_file_bytes=None)
                _write_stats(stats, stats_path)
                return stats
        except Exception:  # noqa: BLE001 — unreadable: written again below
            pass
        log.warning("%s holds other voxels or is unreadable; fetching it again", out)
    t0 = time.monotonic()
    args = (base_url, root, subject, session, voxel_ijk, grid_shape, out, voxel_set)
    with nullcontext(client) if client else closing(HttpClient()) as c:
        if source == "hdf5_ranges":
            try:
                stats.update(_betas_by_ranges(*args, client=c, block_size=block_size, cache_bytes=cache_bytes))
            except UnsupportedLayout as err:
                if not fallback:
                    raise
                log.warning("%s: %s; downloading the whole .nii.gz instead", nifti_key, err)
                stats["fallback_reason"], source = str(err), "nifti"
        if source == "nifti":
            stats.update(_betas_from_nifti(*args, client=c, keep_nifti=keep_nifti))
    stats["seconds"] = round(time.monotonic() - t0, 3)
    log.info("%s session %02d: %s, %d requests, %.1f MB (whole file %.1f MB)", subject, session,
             stats["source"], stats["requests"], stats["bytes"] / 1e6, stats["whole_file_bytes"] / 1e6)
    _write_stats(stats, stats_path)
    return stats


def _betas_by_ranges(base_url, root, subject, session, voxel_ijk, grid_shape, out, voxel_set, *, client,
                     block_size, cache_bytes) -> dict:
    key = nsd_layout.betas(subject, session, "hdf5")
    before = client.traffic.snapshot()
    with open_remote(key_url(base_url, key), client=client, name=key, block_size=block_size,
                     cache_bytes=cache_bytes) as (f, size):
        if "betas" not in f:
            raise UnsupportedLayout(f"{key}: no /betas dataset")
        dset = f["betas"]
        X, Y, Z = grid_shape
        if dset.ndim != 4 or tuple(dset.shape[1:]) != (Z, Y, X):
            raise ValueError(
                f"{key}: /betas is {dset.shape}, expected (n_trials, {Z}, {Y}, {X}) for the func grid "
                f"{grid_shape} of {subject}'s brainmask — are the masks from func1pt8mm?")
        if dset.dtype.kind != "i" or dset.dtype.itemsize != 2:
            raise ValueError(f"{key}: /betas is {dset.dtype}, expected int16 (NSD's beta x 300)")
        check_readable(dset)
        betas = read_voxels(dset, voxel_ijk[:, ::-1]).T  # (n_trials, n_voxels)
        chunks = list(dset.chunks or [])
    compact_betas.write_compact_betas(out, np.ascontiguousarray(betas), voxel_ijk, source_key=key,
                                      grid_shape=grid_shape, voxel_set=voxel_set)
    stats = {"source": "hdf5_ranges", "key": key, "n_trials": int(betas.shape[0]), **client.traffic.since(before),
             "whole_file_bytes": int(size), "chunks": chunks, "block_size": block_size, "cache_bytes": cache_bytes}
    try:  # for the record: the .nii.gz the nifti source would download (one HEAD, not counted)
        stats["nifti_bytes"] = client.head(key_url(base_url, nsd_layout.betas(subject, session))).size
    except Exception:  # noqa: BLE001 — only a statistic
        stats["nifti_bytes"] = None
    return stats


def _betas_from_nifti(base_url, root, subject, session, voxel_ijk, grid_shape, out, voxel_set, *, client,
                      keep_nifti) -> dict:
    key = nsd_layout.betas(subject, session)
    got = fetch_key(base_url, key, root, client=client)
    path = Path(got["path"])
    shape = nib.load(path).shape
    if len(shape) != 4 or tuple(shape[:3]) != tuple(grid_shape):
        raise ValueError(f"{key}: shape {shape}, expected {tuple(grid_shape)} + (n_trials,) — "
                         f"are the masks from func1pt8mm?")
    betas = nsd_tree.session_betas(root, subject, session, voxel_ijk, "nifti")
    compact_betas.write_compact_betas(out, betas, voxel_ijk, source_key=key, grid_shape=grid_shape,
                                      voxel_set=voxel_set)
    if not keep_nifti:
        path.unlink()
    return {"source": "nifti", "key": key, "n_trials": int(betas.shape[0]), "requests": got["requests"],
            "bytes": got["bytes"], "whole_file_bytes": got["size"], "download_status": got["status"]}


# ---------------------------------------------------------------- stimuli


def read_rows(dset: h5py.Dataset, rows) -> np.ndarray:
    """``dset[rows]`` for increasing ``rows`` (h5py reads each row's extent or chunks once)."""
    return dset[np.asarray(rows, dtype=np.int64)]


def _existing_ids(path: Path):
    """Sorted image ids an existing stimuli file holds (all rows of a full brick), or None if unreadable."""
    try:
        with h5py.File(path, "r") as f:
            n = f["imgBrick"].shape[0]
            ids = f["image_ids"][()].astype(np.int64) if "image_ids" in f else np.arange(n)
        return ids if len(ids) == n and (np.diff(ids) > 0).all() else None
    except Exception:  # noqa: BLE001 — any unreadable file is simply not reused
        return None


def fetch_stimuli_subset(base_url: str, root, image_ids, *, out_path=None, client: HttpClient | None = None,
                         batch: int = STIMULI_BATCH, readahead: int = STIMULI_READAHEAD, stats_path=None) -> dict:
    """Write the images ``image_ids`` of ``nsd_stimuli.hdf5`` to a subset file, by range reads.

    The subset file (default ``root/<STIMULI key>``) holds ``imgBrick`` (n, H,
    W, 3) uint8 and ``image_ids`` (n,) int64 sorted (docs/CONTRACTS.md). An
    existing file holding all the ids is kept; rows an older subset already
    holds are copied from it, not fetched again. Work goes to ``<name>.part``
    (batch by batch, resumed if interrupted) and is renamed when complete.
    Each request reads one miss plus ``readahead`` bytes.

    Returns
    -------
    dict: path, n_images, fetched (images read remotely), reused, requests,
    bytes, whole_file_bytes (the full brick), seconds, status.
    """
    ids = np.unique(np.asarray(image_ids, dtype=np.int64))
    out = Path(out_path) if out_path is not None else Path(root) / nsd_layout.STIMULI
    part = out.with_name(out.name + ".part")
    t0 = time.monotonic()
    stats = {"path": str(out), "n_images": int(len(ids)), "fetched": 0, "reused": 0, "requests": 0,
             "bytes": 0, "whole_file_bytes": None, "status": "present"}
    old = _existing_ids(out) if out.exists() else None
    if old is None and out.exists():
        log.warning("%s is unreadable; fetching it again", out)
    if old is None or not np.isin(ids, old).all():
        with nullcontext(client) if client else closing(HttpClient()) as c:
            before = c.traffic.snapshot()
            try:
                _fill_subset(base_url, ids, part, out if old is not None and len(old) else None, old, c, batch,
                             readahead, stats)
            finally:
                stats.update(c.traffic.since(before))
        os.replace(part, out)
        stats["status"] = "downloaded"
        log.info("stimuli: %d images (%d fetched, %d reused), %d requests, %.1f MB of a %.1f GB file",
                 len(ids), stats["fetched"], stats["reused"], stats["requests"], stats["bytes"] / 1e6,
                 stats["whole_file_bytes"] / 1e9)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    _write_stats(stats, stats_path)
    return stats


def _fill_subset(base_url, ids, part, prev_path, old_ids, client, batch, readahead, stats) -> None:
    """Write the rows ``ids`` into ``part``, copying those ``prev_path`` holds, reading the rest by range."""
    key = nsd_layout.STIMULI
    with open_remote(key_url(base_url, key), client=client, name=key, block_size=readahead,
                     cache_type="bytes") as (f, size):
        src = f["imgBrick"]
        if src.ndim != 4 or src.shape[3] != 3 or src.dtype != np.uint8:
            raise ValueError(f"{key}: imgBrick is {src.shape} {src.dtype}, expected (n, H, W, 3) uint8")
        if len(ids) and (ids[0] < 0 or ids[-1] >= src.shape[0]):
            raise IndexError(f"{key}: image ids {ids[0]}..{ids[-1]} outside 0..{src.shape[0] - 1}")
        check_readable(src)
        stats["whole_file_bytes"] = int(size)
        done = _open_part(part, ids, src.shape[1:])
        with h5py.File(part, "a") as dst, (h5py.File(prev_path, "r") if prev_path else nullcontext()) as prev:
            for s in range(done, len(ids), batch):
                chunk = ids[s : s + batch]
                block = np.empty((len(chunk), *src.shape[1:]), dtype=np.uint8)
                held = np.zeros(len(chunk), bool)
                if prev is not None:  # old_ids sorted, not empty
                    pos = np.minimum(np.searchsorted(old_ids, chunk), len(old_ids) - 1)
                    held = old_ids[pos] == chunk
                if held.any():
                    block[held] = prev["imgBrick"][pos[held]]
                if not held.all():
                    block[~held] = read_rows(src, chunk[~held])
                dst["imgBrick"][s : s + len(chunk)] = block
                dst.attrs["rows_done"] = s + len(chunk)
                dst.flush()
                stats["fetched"] += int((~held).sum())
                stats["reused"] += int(held.sum())
    with h5py.File(part, "r") as f:
        if not np.array_equal(f["image_ids"][()], ids) or int(f.attrs.get("rows_done", -1)) != len(ids):
            raise RuntimeError(f"{part}: the subset file is incomplete")


def _open_part(part: Path, ids: np.ndarray, image_shape) -> int:
    """Rows already written to a resumable ``.part`` for the same ids, else a fresh one (0)."""
    if part.exists():
        try:
            with h5py.File(part, "r") as f:
                if np.array_equal(f["image_ids"][()], ids) and f["imgBrick"].shape[1:] == tuple(image_shape):
                    done = int(f.attrs.get("rows_done", 0))
                    log.info("%s: resuming at image %d of %d", part, done, len(ids))
                    return done
        except Exception:  # noqa: BLE001 — a broken part is started over
            pass
        part.unlink()
    part.parent.mkdir(parents=True, exist_ok=True)
    with new_hdf5(part) as f:
        add_dataset(f, "imgBrick", shape=(len(ids), *image_shape), dtype=np.uint8, chunks=(1, *image_shape))
        add_dataset(f, "image_ids", ids)
        f.attrs["rows_done"] = 0
        f.attrs["source_key"] = nsd_layout.STIMULI
    return 0
