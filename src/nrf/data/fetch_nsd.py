"""Fetch the real Natural Scenes Dataset into a local tree in NSD's layout.

Only what the configured subjects and sessions need, from NSD's public bucket
(``nsd_layout.BUCKET_URL``, anonymous HTTPS), under ``root`` (``resources/nsd``):

- :func:`fetch_key`: one whole file (experiment design, stimulus info,
  brainmask, nsdgeneral and ROI atlases, MNI transform, ncsnr, or a betas
  ``.nii.gz``): atomic, resumable, verified (:func:`nrf.data.http.download`).
- :func:`fetch_session_betas`: one session's betas at the subject's nsdgeneral
  voxels, range-read from the session's ``.hdf5`` twin
  (:mod:`nrf.data.remote_hdf5`) or, with ``source="nifti"``, extracted from the
  downloaded ``.nii.gz``; written as the compact file
  (:mod:`nrf.data.compact_betas`) beside the session's key. Returns what it
  cost against downloading the whole file.
- :func:`fetch_stimuli_subset`: the images the subjects saw, range-read from
  ``nsd_stimuli.hdf5`` (never the whole 37 GB), into a subset file with
  ``imgBrick`` and ``image_ids`` (docs/CONTRACTS.md "Stimuli").

Which keys a run needs: :func:`common_keys`, :func:`subject_keys`,
:func:`nsd_keys`; which images: :func:`seen_image_ids`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np

from nrf.atomic import atomic_output
from nrf.data import compact_betas, nsd_layout, nsd_tree
from nrf.data.http import HttpClient, download, key_url
from nrf.data.remote_hdf5 import (
    MAX_GAP,
    MAX_REQUESTS,
    WORKERS,
    UnsupportedLayout,
    open_remote,
    read_points,
    read_points_h5py,
    storage_layout,
)

log = logging.getLogger(__name__)

BETAS_SOURCES = ("hdf5_ranges", "nifti")
# Images per batch of stimuli range reads (NSD: 64 x 542 KB = 35 MB in memory).
STIMULI_BATCH = 64


# ---------------------------------------------------------------- keys


def common_keys() -> list[str]:
    """Keys every run needs: the experiment design and the stimulus info."""
    return [nsd_layout.EXPDESIGN, nsd_layout.STIM_INFO]


def subject_keys(subject: str) -> list[str]:
    """A subject's whole-file keys: brainmask, nsdgeneral, ROI atlases, MNI transform, ncsnr."""
    return [
        nsd_layout.brainmask(subject),
        nsd_layout.roi(subject, "nsdgeneral"),
        *[nsd_layout.roi(subject, atlas) for atlas in nsd_layout.ROI_ATLASES],
        nsd_layout.mni_transform(subject),
        nsd_layout.ncsnr(subject),
    ]


def nsd_keys(subjects) -> list[str]:
    """Every whole-file key of a run (betas and stimuli are fetched by their own functions)."""
    keys = common_keys()
    for s in subjects:
        keys.extend(subject_keys(s))
    return keys


# ---------------------------------------------------------------- whole files


def fetch_key(base_url: str, key: str, root, *, client: HttpClient | None = None) -> dict:
    """Download ``base_url/key`` to ``root/key`` (atomic, resumed, verified).

    An existing file that matches the server is kept. Returns
    ``{key, path, size, requests, bytes, status, seconds}`` (status:
    downloaded, resumed or present). Raises
    :class:`nrf.data.http.RemoteNotFoundError` naming the key on 403/404.
    """
    if key == nsd_layout.STIMULI:
        raise ValueError(f"{key}: 37 GB — use fetch_stimuli_subset for the images a run needs")
    t0 = time.monotonic()
    own = client is None
    client = client or HttpClient()
    try:
        res = download(key_url(base_url, key), Path(root) / key, client=client, name=key)
    finally:
        if own:
            client.close()
    return {"key": key, "path": str(res.path), "size": res.size, "requests": res.requests,
            "bytes": res.bytes, "status": res.status, "seconds": round(time.monotonic() - t0, 3)}


# ---------------------------------------------------------------- betas


def _write_stats(stats: dict, stats_path) -> None:
    if stats_path is None:
        return
    with atomic_output(stats_path) as tmp:
        tmp.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")


def fetch_session_betas(base_url: str, root, subject: str, session: int, voxel_ijk, grid_shape, *,
                        source: str = "hdf5_ranges", fallback: bool = True, keep_nifti: bool = True,
                        client: HttpClient | None = None, max_gap: int = MAX_GAP,
                        max_requests: int | None = MAX_REQUESTS, workers: int = WORKERS,
                        stats_path=None) -> dict:
    """Write one session's betas at ``voxel_ijk`` as the compact file; return what it cost.

    Parameters
    ----------
    session : 1-based
    voxel_ijk : (n_voxels, 3) int, (i, j, k) on the func grid, C-order (:func:`nrf.data.nsd_tree.subject_voxels`)
    grid_shape : (X, Y, Z) of the func grid
    source : ``"hdf5_ranges"`` reads only the voxels from the ``.hdf5`` twin by
        HTTP range requests; ``"nifti"`` downloads the whole ``.nii.gz`` into
        the tree and extracts them
    fallback : with ``hdf5_ranges``, fall back to ``nifti`` when the twin
        cannot be range-read (filtered chunks, unknown layout)
    keep_nifti : with ``nifti``, keep the downloaded ``.nii.gz`` (else delete it
        once the compact file is written)
    max_gap, max_requests, workers : range merging and parallel requests
    stats_path : if given, the returned dict is also written there as JSON

    An existing compact file with the same voxels is kept (source "present").

    Returns
    -------
    dict: subject, session, source, path, n_voxels, n_trials, requests, bytes
    (received), whole_file_bytes (the file the method would otherwise
    download: the ``.hdf5`` twin for ranges, the ``.nii.gz`` for nifti),
    seconds, and for ranges nifti_bytes (the ``.nii.gz``'s size), the
    metadata/data split and the chunk index kind.
    """
    if source not in BETAS_SOURCES:
        raise ValueError(f"source must be one of {BETAS_SOURCES}, got {source!r}")
    voxel_ijk = np.asarray(voxel_ijk, dtype=np.int32).reshape(-1, 3)
    grid_shape = tuple(int(s) for s in grid_shape)
    nifti_key = nsd_layout.betas(subject, session)
    out = Path(root) / compact_betas.compact_key(nifti_key)
    if out.exists():
        try:
            _, stored = compact_betas.read_compact_betas(out)
            if np.array_equal(stored, voxel_ijk):
                stats = {"source": "present", "subject": subject, "session": int(session), "path": str(out),
                         "n_voxels": len(voxel_ijk), "requests": 0, "bytes": 0, "whole_file_bytes": None}
                _write_stats(stats, stats_path)
                return stats
        except Exception:  # noqa: BLE001 — unreadable: written again below
            pass
        log.warning("%s holds other voxels or is unreadable; fetching it again", out)
    own = client is None
    client = client or HttpClient()
    t0 = time.monotonic()
    try:
        if source == "hdf5_ranges":
            try:
                stats = _betas_by_ranges(base_url, subject, session, voxel_ijk, grid_shape, out,
                                         client=client, max_gap=max_gap, max_requests=max_requests,
                                         workers=workers)
            except UnsupportedLayout as err:
                if not fallback:
                    raise
                log.warning("%s: %s; downloading the whole .nii.gz instead", nifti_key, err)
                stats = _betas_from_nifti(base_url, root, subject, session, voxel_ijk, grid_shape, out,
                                          client=client, keep_nifti=keep_nifti)
                stats["fallback_reason"] = str(err)
        else:
            stats = _betas_from_nifti(base_url, root, subject, session, voxel_ijk, grid_shape, out,
                                      client=client, keep_nifti=keep_nifti)
    finally:
        if own:
            client.close()
    stats.update(subject=subject, session=int(session), path=str(out), n_voxels=len(voxel_ijk),
                 seconds=round(time.monotonic() - t0, 3))
    log.info("%s session %02d: %s, %d requests, %.1f MB (whole file %.1f MB)", subject, session,
             stats["source"], stats["requests"], stats["bytes"] / 1e6, stats["whole_file_bytes"] / 1e6)
    _write_stats(stats, stats_path)
    return stats


def _betas_by_ranges(base_url, subject, session, voxel_ijk, grid_shape, out, *, client, max_gap,
                     max_requests, workers) -> dict:
    key = nsd_layout.betas(subject, session, "hdf5")
    before = client.traffic.snapshot()
    with open_remote(key_url(base_url, key), client=client, name=key) as (f, reader):
        if "betas" not in f:
            raise UnsupportedLayout(f"{key}: no /betas dataset")
        dset = f["betas"]
        X, Y, Z = grid_shape
        if dset.ndim != 4 or tuple(dset.shape[1:]) != (Z, Y, X):
            raise ValueError(
                f"{key}: /betas is {dset.shape}, expected (n_trials, {Z}, {Y}, {X}) for the func grid "
                f"{grid_shape} of {subject}'s brainmask — are the masks from func1pt8mm?"
            )
        if dset.dtype.kind != "i" or dset.dtype.itemsize != 2:
            raise ValueError(f"{key}: /betas is {dset.dtype}, expected int16 (NSD's beta x 300)")
        layout = storage_layout(dset)
        values, rs = read_points(reader, dset, (1, 2, 3), voxel_ijk[:, ::-1], max_gap=max_gap,
                                 max_requests=max_requests, workers=workers)
        whole = reader.size
    betas = np.ascontiguousarray(values.T.astype(np.int16))  # (n_trials, n_voxels)
    compact_betas.write_compact_betas(out, betas, voxel_ijk, source_key=key, grid_shape=grid_shape)
    after = client.traffic.snapshot()
    try:  # for the record: the .nii.gz the nifti source would download (one HEAD, not counted)
        nifti_bytes = client.head(key_url(base_url, nsd_layout.betas(subject, session))).size
    except Exception:  # noqa: BLE001 — only a statistic
        nifti_bytes = None
    return {"source": "hdf5_ranges", "key": key, "n_trials": int(betas.shape[0]),
            "requests": after["requests"] - before["requests"], "bytes": after["bytes"] - before["bytes"],
            "whole_file_bytes": int(whole), "nifti_bytes": nifti_bytes,
            "layout": layout.kind, "chunks": list(layout.chunks),
            "metadata_requests": rs.metadata_requests, "metadata_bytes": rs.metadata_bytes,
            "data_ranges": rs.data_ranges, "needed_bytes": rs.needed_bytes,
            "index": rs.extra.get("index"), "max_gap": max_gap, "max_requests": max_requests}


def _betas_from_nifti(base_url, root, subject, session, voxel_ijk, grid_shape, out, *, client,
                      keep_nifti) -> dict:
    key = nsd_layout.betas(subject, session)
    got = fetch_key(base_url, key, root, client=client)
    path = Path(got["path"])
    import nibabel as nib

    shape = nib.load(path).shape
    if len(shape) != 4 or tuple(shape[:3]) != tuple(grid_shape):
        raise ValueError(f"{key}: shape {shape}, expected {tuple(grid_shape)} + (n_trials,) — "
                         f"are the masks from func1pt8mm?")
    betas = nsd_tree.session_betas(root, subject, session, voxel_ijk, "nifti")
    compact_betas.write_compact_betas(out, betas, voxel_ijk, source_key=key, grid_shape=grid_shape)
    if not keep_nifti:
        path.unlink()
    return {"source": "nifti", "key": key, "n_trials": int(betas.shape[0]), "requests": got["requests"],
            "bytes": got["bytes"], "whole_file_bytes": got["size"], "download_status": got["status"]}


# ---------------------------------------------------------------- stimuli


def seen_image_ids(root, sessions: dict, *, trials_per_session: int = nsd_layout.NSD_TRIALS_PER_SESSION
                   ) -> np.ndarray:
    """Sorted unique 0-based 73k ids shown to the subjects in their first sessions.

    Parameters
    ----------
    root : tree holding the experiment design
    sessions : {subject: number of sessions}; a subject's trials are the first
        ``n_sessions x trials_per_session`` of ``masterordering``
    trials_per_session : 750 in NSD
    """
    design = nsd_tree.read_expdesign(root)
    ids = [
        nsd_tree.trial_images(design, subject, int(n) * int(trials_per_session))[0]
        for subject, n in sessions.items()
    ]
    return np.unique(np.concatenate(ids)).astype(np.int64) if ids else np.zeros(0, np.int64)


def _existing_subset(path: Path):
    """(image_ids or None for a full brick, n_rows) of an existing stimuli file, or None if unreadable."""
    try:
        with h5py.File(path, "r") as f:
            n = f["imgBrick"].shape[0]
            ids = f["image_ids"][()].astype(np.int64) if "image_ids" in f else None
            return ids, n
    except Exception:  # noqa: BLE001 — any unreadable file is simply not reused
        return None


def fetch_stimuli_subset(base_url: str, root, image_ids, *, out_path=None, client: HttpClient | None = None,
                         batch: int = STIMULI_BATCH, max_gap: int = MAX_GAP, workers: int = WORKERS,
                         stats_path=None) -> dict:
    """Write the images ``image_ids`` of ``nsd_stimuli.hdf5`` to a subset file, by range reads.

    The subset file (default ``root/<STIMULI key>``) holds ``imgBrick`` (n, H,
    W, 3) uint8 and ``image_ids`` (n,) int64 sorted (docs/CONTRACTS.md). An
    existing file holding all the ids is kept; rows an older subset already
    holds are copied from it, not fetched again. Work goes to ``<name>.part``
    (batch by batch, resumed if interrupted) and is renamed when complete.

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

    old = _existing_subset(out) if out.exists() else None
    if old is not None:
        old_ids, n_rows = old
        have = np.arange(n_rows) if old_ids is None else old_ids
        if np.isin(ids, have).all():
            stats["seconds"] = round(time.monotonic() - t0, 3)
            _write_stats(stats, stats_path)
            return stats
    elif out.exists():
        log.warning("%s is unreadable; fetching it again", out)

    own = client is None
    client = client or HttpClient()
    before = client.traffic.snapshot()
    key = nsd_layout.STIMULI
    try:
        with open_remote(key_url(base_url, key), client=client, name=key) as (f, reader):
            src = f["imgBrick"]
            if src.ndim != 4 or src.shape[3] != 3 or src.dtype != np.uint8:
                raise ValueError(f"{key}: imgBrick is {src.shape} {src.dtype}, expected (n, H, W, 3) uint8")
            if len(ids) and (ids[0] < 0 or ids[-1] >= src.shape[0]):
                raise IndexError(f"{key}: image ids {ids[0]}..{ids[-1]} outside 0..{src.shape[0] - 1}")
            stats["whole_file_bytes"] = int(reader.size)
            try:
                storage_layout(src)
                ranged = True
            except UnsupportedLayout as err:
                log.warning("%s; reading the images through h5py instead", err)
                ranged = False
            done = _open_part(part, ids, src.shape[1:])
            with h5py.File(part, "a") as dst, \
                    (h5py.File(out, "r") if old is not None else _Null()) as prev:
                prev_rows = _row_lookup(old[0], old[1]) if old is not None else None
                for s in range(done, len(ids), batch):
                    chunk = ids[s : s + batch]
                    block = np.empty((len(chunk), *src.shape[1:]), dtype=np.uint8)
                    reuse = np.zeros(len(chunk), dtype=bool)
                    if prev_rows is not None:
                        rows = prev_rows(chunk)
                        reuse = rows >= 0
                        if reuse.any():  # h5py reads increasing rows; put them back in order
                            r = rows[reuse]
                            sorted_rows = np.sort(r)
                            block[reuse] = prev["imgBrick"][sorted_rows][np.searchsorted(sorted_rows, r)]
                    need = chunk[~reuse]
                    if len(need):
                        if ranged:
                            vals, _ = read_points(reader, src, (0,), need[:, None], max_gap=max_gap,
                                                  max_requests=None, workers=workers)
                        else:
                            vals = read_points_h5py(src, (0,), need)
                        block[~reuse] = vals
                    dst["imgBrick"][s : s + len(chunk)] = block
                    dst.attrs["rows_done"] = s + len(chunk)
                    dst.flush()
                    stats["fetched"] += int(len(need))
                    stats["reused"] += int(reuse.sum())
        _check_subset(part, ids)
        os.replace(part, out)
    finally:
        after = client.traffic.snapshot()
        stats["requests"] = after["requests"] - before["requests"]
        stats["bytes"] = after["bytes"] - before["bytes"]
        if own:
            client.close()
    stats["status"] = "downloaded"
    stats["seconds"] = round(time.monotonic() - t0, 3)
    log.info("stimuli: %d images (%d fetched, %d reused), %d requests, %.1f MB of a %.1f GB file",
             len(ids), stats["fetched"], stats["reused"], stats["requests"], stats["bytes"] / 1e6,
             (stats["whole_file_bytes"] or 0) / 1e9)
    _write_stats(stats, stats_path)
    return stats


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _row_lookup(old_ids, n_rows):
    """A function: 73k ids -> row in the old file (-1 where absent)."""
    have = np.arange(n_rows, dtype=np.int64) if old_ids is None else np.asarray(old_ids, dtype=np.int64)
    order = np.argsort(have, kind="stable")
    sorted_ids = have[order]

    def rows(q):
        pos = np.searchsorted(sorted_ids, q)
        pos = np.minimum(pos, max(len(sorted_ids) - 1, 0))
        hit = (len(sorted_ids) > 0) & (sorted_ids[pos] == q)
        return np.where(hit, order[pos], -1)

    return rows


def _open_part(part: Path, ids: np.ndarray, image_shape) -> int:
    """Rows already written to a resumable ``.part`` for the same ids, else a fresh one (0)."""
    if part.exists():
        try:
            with h5py.File(part, "r") as f:
                if (np.array_equal(f["image_ids"][()], ids) and f["imgBrick"].shape[1:] == tuple(image_shape)):
                    done = int(f.attrs.get("rows_done", 0))
                    log.info("%s: resuming at image %d of %d", part, done, len(ids))
                    return done
        except Exception:  # noqa: BLE001 — a broken part is started over
            pass
        part.unlink()
    part.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(part, "w") as f:
        f.create_dataset("imgBrick", shape=(len(ids), *image_shape), dtype=np.uint8,
                         chunks=(1, *image_shape))
        f.create_dataset("image_ids", data=ids)
        f.attrs["rows_done"] = 0
        f.attrs["source_key"] = nsd_layout.STIMULI
    return 0


def _check_subset(path: Path, ids: np.ndarray) -> None:
    with h5py.File(path, "r") as f:
        if not np.array_equal(f["image_ids"][()], ids) or f["imgBrick"].shape[0] != len(ids) \
                or int(f.attrs.get("rows_done", -1)) != len(ids):
            raise RuntimeError(f"{path}: the subset file is incomplete")
