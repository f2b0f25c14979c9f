"""Fetching NSD from a bucket: a simulated NSD tree served on 127.0.0.1."""

import json
import shutil

import h5py
import numpy as np
import pytest
from http_server import RangeServer

from nrf.data import compact_betas, fetch_nsd, nsd_layout, nsd_tree, roi_voxels
from nrf.data.http import HttpClient, RemoteError, RemoteNotFoundError
from nrf.data.simulate import simulate_nsd_tree

SUBJECT = "subj01"
TRIALS = 25


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A tiny simulated tree with the betas' .hdf5 twins, served like NSD's bucket."""
    root = tmp_path_factory.mktemp("bucket")
    summary = simulate_nsd_tree(root, subjects=(SUBJECT,), n_train_images=20, n_test_images=5, repeats=3,
                                trials_per_session=TRIALS, image_size=16, seed=0, hdf5_twins=True)
    with RangeServer(root) as srv:
        yield srv, root, summary


def client():
    return HttpClient(backoff=0.01, retries=4, timeout=5)


def _fetch_masks(url, local):
    for key in fetch_nsd.nsd_keys([SUBJECT]):
        fetch_nsd.fetch_key(url, key, local, client=client())


def test_keys_cover_what_the_pipeline_reads():
    keys = fetch_nsd.nsd_keys([SUBJECT, "subj02"])
    assert nsd_layout.EXPDESIGN in keys and nsd_layout.STIM_INFO in keys
    assert nsd_layout.mni_transform("subj02") in keys and nsd_layout.ncsnr(SUBJECT) in keys
    assert all(nsd_layout.roi(SUBJECT, a) in keys for a in ["nsdgeneral", *nsd_layout.ROI_ATLASES])
    assert len(keys) == len(set(keys)) == 2 + 2 * 9


def test_whole_files_equal_the_source(bucket, tmp_path):
    srv, root, _ = bucket
    _fetch_masks(srv.url, tmp_path)
    for key in fetch_nsd.nsd_keys([SUBJECT]):
        assert (tmp_path / key).read_bytes() == (root / key).read_bytes(), key
    assert not list(tmp_path.rglob("*.part*"))
    again = fetch_nsd.fetch_key(srv.url, nsd_layout.EXPDESIGN, tmp_path, client=client())
    assert again["status"] == "present"


@pytest.mark.parametrize("block_size", [4096, 4 << 20])  # ranged reads, or one GET of a small file
def test_range_read_betas_equal_the_whole_file(bucket, tmp_path, block_size):
    srv, root, summary = bucket
    _fetch_masks(srv.url, tmp_path)
    ijk, grid = nsd_tree.subject_voxels(tmp_path, SUBJECT)
    assert len(ijk) == summary["subjects"][SUBJECT]["n_voxels"]
    assert list(grid) == summary["subjects"][SUBJECT]["grid_shape"]
    key = nsd_layout.betas(SUBJECT, 2, "hdf5")
    srv.reset_log()
    stats = fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 2, ijk, grid, client=client(),
                                          block_size=block_size, stats_path=tmp_path / "stats.json")
    gets = [r for m, k, r in srv.requests if m == "GET" and k == key]
    assert len(gets) == (1 if block_size > (root / key).stat().st_size else stats["requests"] - 1)
    betas, stored_ijk = compact_betas.read_compact_betas(stats["path"])
    expected = nsd_tree.session_betas(root, SUBJECT, 2, ijk, "nifti")  # voxels of the whole .nii.gz
    np.testing.assert_array_equal(betas, expected)
    np.testing.assert_array_equal(stored_ijk, ijk)
    assert stats["source"] == "hdf5_ranges" and stats["n_trials"] == TRIALS
    twin = root / nsd_layout.betas(SUBJECT, 2, "hdf5")
    assert stats["whole_file_bytes"] == twin.stat().st_size
    assert json.loads((tmp_path / "stats.json").read_text())["requests"] == stats["requests"]
    # the compact file is what the pipeline reads
    np.testing.assert_array_equal(nsd_tree.session_betas(tmp_path, SUBJECT, 2, ijk, "compact"), expected)
    again = fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 2, ijk, grid, client=client())
    assert again["source"] == "present" and again["requests"] == 0


def test_probe_roi_voxels_have_their_own_file_fetched_again_when_stale(bucket, tmp_path):
    """Figure 4's ROI voxels outside nsdgeneral go to betas_sessionNN.probe_rois.hdf5; one
    holding other voxels (another probes.rois, or nsdgeneral's) is fetched again, not reused."""
    srv, root, _ = bucket
    _fetch_masks(srv.url, tmp_path)
    rois = {"EBA": ("floc-bodies", [1]), "V1": ("prf-visualrois", [1, 2])}
    ijk, grid = roi_voxels.tree_outside_voxels(tmp_path, SUBJECT, rois)
    nsdgeneral, _ = nsd_tree.subject_voxels(tmp_path, SUBJECT)
    assert len(ijk) > 0
    stale = tmp_path / compact_betas.compact_key(nsd_layout.betas(SUBJECT, 2), "probe_rois")
    compact_betas.write_compact_betas(stale, np.zeros((TRIALS, len(nsdgeneral)), np.int16), nsdgeneral,
                                      source_key="old", grid_shape=grid)
    stats = fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 2, ijk, grid, voxel_set="probe_rois",
                                          client=client())
    assert stats["path"] == str(stale) and stats["source"] == "hdf5_ranges" and stats["n_voxels"] == len(ijk)
    betas, stored_ijk = compact_betas.read_compact_betas(stale)
    np.testing.assert_array_equal(stored_ijk, ijk)
    np.testing.assert_array_equal(betas, nsd_tree.session_betas(root, SUBJECT, 2, ijk, "nifti"))
    with h5py.File(stale) as f:
        assert f.attrs["voxel_set"] == "probe_rois"
    assert not (tmp_path / compact_betas.compact_key(nsd_layout.betas(SUBJECT, 2))).exists()


def test_dropped_connection_during_range_reads(bucket, tmp_path):
    srv, root, _ = bucket
    _fetch_masks(srv.url, tmp_path)
    ijk, grid = nsd_tree.subject_voxels(tmp_path, SUBJECT)
    key = nsd_layout.betas(SUBJECT, 1, "hdf5")
    srv.drop[key] = (5000, 3)
    stats = fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 1, ijk, grid, client=client())
    betas, _ = compact_betas.read_compact_betas(stats["path"])
    np.testing.assert_array_equal(betas, nsd_tree.session_betas(root, SUBJECT, 1, ijk, "nifti"))
    assert key not in srv.drop  # the drops happened


def test_nifti_source_and_fallback_for_an_unreadable_twin(bucket, tmp_path):
    srv, root, _ = bucket
    _fetch_masks(srv.url, tmp_path)
    ijk, grid = nsd_tree.subject_voxels(tmp_path, SUBJECT)
    expected = nsd_tree.session_betas(root, SUBJECT, 3, ijk, "nifti")
    stats = fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 3, ijk, grid, source="nifti",
                                          keep_nifti=False, client=client())
    assert stats["source"] == "nifti" and stats["bytes"] == stats["whole_file_bytes"]
    np.testing.assert_array_equal(compact_betas.read_compact_betas(stats["path"])[0], expected)
    assert not (tmp_path / nsd_layout.betas(SUBJECT, 3)).exists()

    # a gzip-compressed twin is read by range too (h5py decodes the chunks); a
    # twin whose filter this HDF5 lacks cannot be, and falls back to the .nii.gz
    other = tmp_path / "other"
    shutil.copytree(root, other)
    for session, opts in ((2, {"compression": "gzip"}), (3, {"compression": 32001, "allow_unknown_filter": True})):
        twin = other / nsd_layout.betas(SUBJECT, session, "hdf5")
        with h5py.File(twin, "r") as f:
            data = f["betas"][()]
        twin.unlink()
        with h5py.File(twin, "w") as f:
            f.create_dataset("betas", shape=data.shape, dtype=data.dtype, chunks=(TRIALS, 1, 1, 1), **opts)
            if session == 2:
                f["betas"][...] = data
    local = tmp_path / "local2"
    with RangeServer(other) as srv2:
        _fetch_masks(srv2.url, local)
        stats = fetch_nsd.fetch_session_betas(srv2.url, local, SUBJECT, 2, ijk, grid, client=client())
        assert stats["source"] == "hdf5_ranges"
        np.testing.assert_array_equal(compact_betas.read_compact_betas(stats["path"])[0],
                                      nsd_tree.session_betas(root, SUBJECT, 2, ijk, "nifti"))
        with pytest.raises(fetch_nsd.UnsupportedLayout, match="filter"):
            fetch_nsd.fetch_session_betas(srv2.url, local, SUBJECT, 3, ijk, grid, fallback=False, client=client())
        stats = fetch_nsd.fetch_session_betas(srv2.url, local, SUBJECT, 3, ijk, grid, client=client())
    assert stats["source"] == "nifti" and "filter" in stats["fallback_reason"]
    np.testing.assert_array_equal(compact_betas.read_compact_betas(stats["path"])[0], expected)


def test_missing_session_names_the_key(bucket, tmp_path):
    srv, _, _ = bucket
    _fetch_masks(srv.url, tmp_path)
    ijk, grid = nsd_tree.subject_voxels(tmp_path, SUBJECT)
    with pytest.raises(RemoteNotFoundError, match="betas_session09.hdf5"):
        fetch_nsd.fetch_session_betas(srv.url, tmp_path, SUBJECT, 9, ijk, grid, client=client())
    assert not list(tmp_path.rglob("*session09*"))


def test_stimuli_subset_holds_the_seen_images(bucket, tmp_path):
    srv, root, summary = bucket
    fetch_nsd.fetch_key(srv.url, nsd_layout.EXPDESIGN, tmp_path, client=client())
    ids = nsd_tree.images_seen(tmp_path, {SUBJECT: 1}, TRIALS)
    design = nsd_tree.read_expdesign(root)
    mo = design["masterordering"][:TRIALS]
    assert ids.tolist() == sorted(set((design["subjectim"][0, mo - 1] - 1).tolist()))
    with h5py.File(root / nsd_layout.STIMULI, "r") as f:
        full = f["imgBrick"][()]

    stats = fetch_nsd.fetch_stimuli_subset(srv.url, tmp_path, ids, client=client(), batch=4)
    out = tmp_path / nsd_layout.STIMULI
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["image_ids"][()], ids)
        np.testing.assert_array_equal(f["imgBrick"][()], full[ids])
    assert stats["fetched"] == len(ids) and stats["status"] == "downloaded"

    # more sessions: the images already held are copied, only the new ones fetched
    more = nsd_tree.images_seen(tmp_path, {SUBJECT: 3}, TRIALS)
    stats = fetch_nsd.fetch_stimuli_subset(srv.url, tmp_path, more, client=client(), batch=4)
    assert stats["reused"] == len(ids) and stats["fetched"] == len(more) - len(ids)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["imgBrick"][()], full[more])
    assert fetch_nsd.fetch_stimuli_subset(srv.url, tmp_path, ids, client=client())["status"] == "present"


def test_stimuli_by_range_and_resumed_part(tmp_path, rng, monkeypatch):
    """An uncompressed brick (like NSD's) is range-read; an interrupted subset resumes."""
    bucket = tmp_path / "bucket"
    brick = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    (bucket / nsd_layout.STIMULI).parent.mkdir(parents=True)
    with h5py.File(bucket / nsd_layout.STIMULI, "w") as f:
        f.create_dataset("imgBrick", data=brick)
    ids = np.array([2, 3, 9, 10, 11, 30, 49])
    local = tmp_path / "local"
    real_read, calls = fetch_nsd.read_rows, []

    def cut_after_two_batches(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RemoteError("connection lost for good")
        return real_read(*args, **kw)

    with RangeServer(bucket) as srv:
        monkeypatch.setattr(fetch_nsd, "read_rows", cut_after_two_batches)
        with pytest.raises(RemoteError):
            fetch_nsd.fetch_stimuli_subset(srv.url, local, ids, client=client(), batch=2)
        part = local / (nsd_layout.STIMULI + ".part")
        assert part.exists() and not (local / nsd_layout.STIMULI).exists()
        stats = fetch_nsd.fetch_stimuli_subset(srv.url, local, ids, client=client(), batch=2)
    assert stats["fetched"] == 3  # rows 4..6; rows 0..3 were in the part
    assert not part.exists()
    with h5py.File(local / nsd_layout.STIMULI, "r") as f:
        np.testing.assert_array_equal(f["imgBrick"][()], brick[ids])
        np.testing.assert_array_equal(f["image_ids"][()], ids)
