"""Preparation of a subject, on a tiny NSD tree built by hand.

The tree: a 4 x 5 x 3 func grid, 2 sessions of 12 trials, 8 images per
subject of which the first 3 are shared; every image is shown 3 times, and
each session adds its own per-voxel drift so that z-scoring matters.
References are computed here independently (scipy.stats.zscore, a loop over
images) and compared with the vectorised pipeline.
"""

from dataclasses import dataclass

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
import scipy.stats

from nrf.data import compact_betas, nsd_layout, prepare
from nrf.data.prepared import load_prepared

GRID = (4, 5, 3)
SUBJECT = "subj02"
N_SESSIONS, T = 2, 12
N_IMAGES, N_SHARED = 8, 3
SHARED_73K = np.array([5, 17, 40])  # 1-based


@dataclass
class Tree:
    root: object
    mask: np.ndarray  # (X, Y, Z) bool, the selected voxels
    masterordering: np.ndarray
    subjectim: np.ndarray
    betas: list  # per session (X, Y, Z, T) int16
    transform: np.ndarray
    rois: dict


def _save_nifti(root, key, data):
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)


def _write_betas(tree, session, data):
    key = nsd_layout.betas(SUBJECT, session)
    _save_nifti(tree.root, key, data)
    ijk = np.argwhere(tree.mask).astype(np.int32)
    compact_betas.write_compact_betas(
        tree.root / compact_betas.compact_key(key),
        data[tree.mask].T,
        ijk,
        source_key=key,
        grid_shape=GRID,
    )


def make_tree(root, rng) -> Tree:
    subjectim = np.zeros((8, N_IMAGES), dtype=np.int64)
    for s in range(8):
        subjectim[s, :N_SHARED] = SHARED_73K
        subjectim[s, N_SHARED:] = 100 + 10 * s + np.arange(N_IMAGES - N_SHARED)
    order = np.repeat(np.arange(1, N_IMAGES + 1), 3)  # 24 trials = 2 sessions
    masterordering = np.concatenate([rng.permutation(order), rng.integers(1, N_IMAGES + 1, 6)])
    path = root / nsd_layout.EXPDESIGN
    path.parent.mkdir(parents=True)
    scipy.io.savemat(
        path,
        {
            "masterordering": masterordering[None].astype(np.float64),
            "subjectim": subjectim.astype(np.float64),
            "sharedix": SHARED_73K[None].astype(np.float64),
        },
    )

    brainmask = (rng.random(GRID) > 0.2).astype(np.int16)
    nsdgeneral = rng.integers(-1, 2, size=GRID).astype(np.int16)
    nsdgeneral[0, 0, 0] = 1
    brainmask[0, 0, 0] = 1
    mask = (brainmask > 0) & (nsdgeneral > 0)
    _save_nifti(root, nsd_layout.brainmask(SUBJECT), brainmask)
    _save_nifti(root, nsd_layout.roi(SUBJECT, "nsdgeneral"), nsdgeneral)

    transform = rng.integers(1, 180, size=GRID + (3,)).astype(np.float32)
    transform[~mask] = nsd_layout.TRANSFORM_INVALID  # invalid outside the selection: fine
    _save_nifti(root, nsd_layout.mni_transform(SUBJECT), transform)

    rois = {}
    for atlas, names in nsd_layout.ROI_ATLASES.items():
        rois[atlas] = rng.integers(0, len(names) + 1, size=GRID).astype(np.int16)
        _save_nifti(root, nsd_layout.roi(SUBJECT, atlas), rois[atlas])

    ncsnr = rng.uniform(0, 1, size=GRID).astype(np.float32)
    _save_nifti(root, nsd_layout.ncsnr(SUBJECT), ncsnr)
    rois["ncsnr"] = ncsnr  # kept with the atlases to check where values land

    tree = Tree(root, mask, masterordering, subjectim, [], transform, rois)
    for s in range(N_SESSIONS):
        drift = rng.normal(0, 400, size=GRID)[..., None] * (s + 1)
        data = np.rint(rng.normal(0, 300, size=GRID + (T,)) * (1 + s) + drift).astype(np.int16)
        tree.betas.append(data)
        _write_betas(tree, s + 1, data)
    return tree


@pytest.fixture
def tree(tmp_path, rng):
    return make_tree(tmp_path / "nsd", rng)


def reference(tree, protocol):
    """Per-image responses {73k id (0-based): (n_voxels,)} computed directly."""
    z_all, ids_all = [], []
    s_index = int(SUBJECT[-2:]) - 1
    for s, data in enumerate(tree.betas):
        x = data[tree.mask].T.astype(np.float64) / 300.0  # (T, n_voxels), C-order
        mo = tree.masterordering[s * T : (s + 1) * T]
        if protocol == "paper":
            z = scipy.stats.zscore(x, axis=0, ddof=0)
        else:
            train = mo > N_SHARED
            z = (x - x[train].mean(0)) / x[train].std(0)
        z_all.append(z)
        ids_all.append(tree.subjectim[s_index, mo - 1] - 1)
    z_all, ids_all = np.concatenate(z_all), np.concatenate(ids_all)
    return {i: z_all[ids_all == i].mean(0) for i in np.unique(ids_all)}


def run(tree, tmp_path, protocol="paper", name="out.hdf5", **kw):
    return prepare.prepare_subject(
        tree.root, SUBJECT, sessions=[1, 2], protocol=protocol, out_path=tmp_path / name, **kw
    )


# ---------------------------------------------------------------- math


def test_zscore_matches_scipy(rng):
    x = rng.normal(3.0, 2.0, size=(12, 7)).astype(np.float32)
    z = prepare.zscore_session(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, scipy.stats.zscore(x.astype(np.float64), axis=0, ddof=0), rtol=1e-5, atol=1e-5)
    # exactly (x - mean) / (std + 1e-6), statistics from the chosen trials only
    keep = np.arange(12) % 3 != 0
    z = prepare.zscore_session(x, keep)
    x64 = x.astype(np.float64)
    ref = (x64 - x64[keep].mean(0)) / (x64[keep].std(0) + 1e-6)
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)


def test_average_by_image_matches_direct_mean(rng):
    ids = np.array([7, 3, 7, 9, 3, 7, 1])
    x = rng.normal(size=(7, 5)).astype(np.float32)
    got_ids, means = prepare.average_by_image(x, ids)
    np.testing.assert_array_equal(got_ids, [1, 3, 7, 9])
    for row, i in enumerate(got_ids):
        np.testing.assert_allclose(means[row], x[ids == i].mean(0), rtol=1e-6)


# ---------------------------------------------------------------- the pipeline


def test_paper_protocol_matches_reference(tree, tmp_path):
    out = run(tree, tmp_path, "paper")
    ref = reference(tree, "paper")
    ijk = np.argwhere(tree.mask)
    np.testing.assert_array_equal(out.voxel_ijk, ijk)
    for split in (out.train, out.test):
        for row, i in enumerate(split.image_ids):
            np.testing.assert_allclose(split.responses[row], ref[i], rtol=1e-4, atol=1e-4)
    # split by masterordering vs sharedix: test = the shared images, train = the rest
    np.testing.assert_array_equal(out.test.image_ids, np.sort(SHARED_73K - 1))
    s_index = int(SUBJECT[-2:]) - 1
    np.testing.assert_array_equal(out.train.image_ids, np.sort(tree.subjectim[s_index, N_SHARED:] - 1))
    # val is the test set under protocol paper
    assert out.val_is_test
    np.testing.assert_array_equal(out.val.image_ids, out.test.image_ids)
    np.testing.assert_array_equal(out.val.responses, out.test.responses)
    # coordinates and ROI labels of the selected voxels
    expected_xyz = nsd_layout.mni_from_transform_index(tree.transform[tree.mask] - 1)
    np.testing.assert_allclose(out.coords, expected_xyz)
    for atlas in nsd_layout.ROI_ATLASES:
        np.testing.assert_array_equal(out.rois[atlas], tree.rois[atlas][tree.mask])
    np.testing.assert_array_equal(out.ncsnr, tree.rois["ncsnr"][tree.mask])


def test_clean_protocol_matches_reference(tree, tmp_path):
    out = run(tree, tmp_path, "clean", val_fraction=0.4, seed=3)
    ref = reference(tree, "clean")
    for split in (out.train, out.val, out.test):
        for row, i in enumerate(split.image_ids):
            np.testing.assert_allclose(split.responses[row], ref[i], rtol=1e-4, atol=1e-4)


def test_clean_zscore_ignores_test_trials(tree, tmp_path):
    before = {p: run(tree, tmp_path, p, name=f"{p}0.hdf5") for p in ("paper", "clean")}
    for s, data in enumerate(tree.betas):  # change only the test-image trials
        shared = tree.masterordering[s * T : (s + 1) * T] <= N_SHARED
        data = data.copy()
        data[..., shared] += 2000
        tree.betas[s] = data
        _write_betas(tree, s + 1, data)
    after = {p: run(tree, tmp_path, p, name=f"{p}1.hdf5") for p in ("paper", "clean")}
    np.testing.assert_array_equal(after["clean"].train.responses, before["clean"].train.responses)
    np.testing.assert_array_equal(after["clean"].val.responses, before["clean"].val.responses)
    assert not np.allclose(after["paper"].train.responses, before["paper"].train.responses, atol=1e-3)


def test_clean_val_is_disjoint_and_seeded(tree, tmp_path):
    a = run(tree, tmp_path, "clean", name="a.hdf5", val_fraction=0.4, seed=1)
    b = run(tree, tmp_path, "clean", name="b.hdf5", val_fraction=0.4, seed=1)
    assert not a.val_is_test
    assert len(a.val.image_ids) == 2 and len(a.train.image_ids) == 3  # round(0.4 * 5)
    assert not set(a.val.image_ids) & set(a.train.image_ids)
    assert not set(a.val.image_ids) & set(a.test.image_ids)
    paper = run(tree, tmp_path, "paper", name="p.hdf5")
    np.testing.assert_array_equal(np.union1d(a.train.image_ids, a.val.image_ids), paper.train.image_ids)
    np.testing.assert_array_equal(a.val.image_ids, b.val.image_ids)
    np.testing.assert_array_equal(a.train.responses, b.train.responses)
    vals = {tuple(run(tree, tmp_path, "clean", name=f"s{s}.hdf5", val_fraction=0.4, seed=s).val.image_ids)
            for s in range(6)}
    assert len(vals) > 1


def test_compact_format_gives_identical_output(tree, tmp_path):
    for protocol in ("paper", "clean"):
        a = run(tree, tmp_path, protocol, name="n.hdf5", betas_format="nifti")
        b = run(tree, tmp_path, protocol, name="c.hdf5", betas_format="compact")
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(a.split(name).responses, b.split(name).responses)
            np.testing.assert_array_equal(a.split(name).image_ids, b.split(name).image_ids)


def test_expected_voxels_mismatch_message(tree, tmp_path):
    n = int(tree.mask.sum())
    run(tree, tmp_path, expected_voxels=n)
    msg = f"{SUBJECT}: {n:,} voxels in nsdgeneral, expected 12,682 — is the mask from func1pt8mm?"
    with pytest.raises(ValueError, match=msg):
        run(tree, tmp_path, expected_voxels=12682)


def test_invalid_transform_at_selected_voxel_raises(tree, tmp_path):
    transform = tree.transform.copy()
    ijk = np.argwhere(tree.mask)
    for i, j, k in ijk[:2]:
        transform[i, j, k, 2] = nsd_layout.TRANSFORM_INVALID
    _save_nifti(tree.root, nsd_layout.mni_transform(SUBJECT), transform)
    with pytest.raises(ValueError, match=rf"{SUBJECT}: .*MNI-to-func1pt8.nii.gz: 2 of {len(ijk)} selected voxels"):
        run(tree, tmp_path)


def test_written_file_round_trips(tree, tmp_path):
    for protocol in ("paper", "clean"):
        out = run(tree, tmp_path, protocol, name=f"{protocol}.hdf5")
        path = tmp_path / f"{protocol}.hdf5"
        assert not list(tmp_path.glob("*.part*"))
        n = int(tree.mask.sum())
        with h5py.File(path, "r") as f:
            assert f["coords"].shape == (n, 3) and f["coords"].dtype == np.float32
            assert f["voxel_ijk"].shape == (n, 3) and f["voxel_ijk"].dtype == np.int32
            for atlas in nsd_layout.ROI_ATLASES:
                assert f[f"roi/{atlas}"].shape == (n,) and f[f"roi/{atlas}"].dtype == np.int16
            for split in ("train", "val", "test"):
                r, ids = f[f"{split}/responses"], f[f"{split}/image_ids"]
                assert r.dtype == np.float32 and ids.dtype == np.int64
                assert r.shape == (ids.shape[0], n)
            assert f.attrs["subject"] == SUBJECT and f.attrs["protocol"] == protocol
            assert tuple(f.attrs["grid_shape"]) == GRID
            assert list(f.attrs["sessions"]) == [1, 2]
            assert bool(f.attrs["val_is_test"]) == (protocol == "paper")
        back = load_prepared(path)
        assert back.attrs["grid_shape"] == GRID and back.attrs["sessions"] == [1, 2]
        assert back.val_is_test == (protocol == "paper") and back.subject == SUBJECT
        np.testing.assert_array_equal(back.coords, out.coords)
        np.testing.assert_array_equal(back.voxel_ijk, out.voxel_ijk)
        for atlas in nsd_layout.ROI_ATLASES:
            np.testing.assert_array_equal(back.rois[atlas], out.rois[atlas])
        np.testing.assert_array_equal(back.ncsnr, out.ncsnr)
        assert back.ncsnr.dtype == np.float32
        for split in ("train", "val", "test"):
            np.testing.assert_array_equal(back.split(split).responses, out.split(split).responses)
            np.testing.assert_array_equal(back.split(split).image_ids, out.split(split).image_ids)
        only = load_prepared(path, splits=("test",))
        assert only.train is None and only.val is None
        np.testing.assert_array_equal(only.test.responses, out.test.responses)
        with pytest.raises(ValueError, match="not loaded"):
            only.split("train")


def test_later_sessions_alone_use_their_own_trials(tree, tmp_path):
    out = prepare.prepare_subject(tree.root, SUBJECT, sessions=[2], protocol="paper", out_path=tmp_path / "s2.hdf5")
    s_index = int(SUBJECT[-2:]) - 1
    mo = tree.masterordering[T : 2 * T]
    seen = np.unique(tree.subjectim[s_index, mo - 1] - 1)
    np.testing.assert_array_equal(np.union1d(out.train.image_ids, out.test.image_ids), seen)
    x = tree.betas[1][tree.mask].T / 300.0
    z = scipy.stats.zscore(x, axis=0)
    ids = tree.subjectim[s_index, mo - 1] - 1
    i = out.train.image_ids[0]
    np.testing.assert_allclose(out.train.responses[0], z[ids == i].mean(0), rtol=1e-4, atol=1e-4)
    # a skipped session whose file is absent counts as many trials as the others
    (tree.root / compact_betas.compact_key(nsd_layout.betas(SUBJECT, 1))).unlink()
    messages = []
    again = prepare.prepare_subject(
        tree.root, SUBJECT, sessions=[2], protocol="paper", betas_format="compact",
        out_path=tmp_path / "s2c.hdf5", log=messages.append,
    )
    assert any("session 1 not present; assuming 12 trials" in m for m in messages)
    np.testing.assert_array_equal(again.train.responses, out.train.responses)


# ---------------------------------------------------------------- the authors' test-image rule


def test_seen_by_all_keeps_shared_images_of_the_first_sessions(tree, tmp_path):
    # test_sessions=1: only shared images shown in session 1 are test images; the
    # others are dropped entirely (neither test nor train), as the authors do
    mo = tree.masterordering
    # move every trial of shared image 3 into session 2, so session 1 lacks it
    late = [t for t in range(T) if mo[t] == N_SHARED]
    swap = [t for t in range(T, 2 * T) if mo[t] > N_SHARED][: len(late)]
    mo[late], mo[swap] = mo[swap], N_SHARED
    design = scipy.io.loadmat(tree.root / nsd_layout.EXPDESIGN)
    design["masterordering"] = mo[None].astype(np.float64)
    scipy.io.savemat(tree.root / nsd_layout.EXPDESIGN,
                     {k: design[k] for k in ("masterordering", "subjectim", "sharedix")})
    s_index = int(SUBJECT[-2:]) - 1
    early = np.unique(tree.subjectim[s_index, mo[:T][mo[:T] <= N_SHARED] - 1] - 1)
    every = np.unique(tree.subjectim[s_index, mo[: 2 * T][mo[: 2 * T] <= N_SHARED] - 1] - 1)
    assert len(every) == N_SHARED and len(early) == N_SHARED - 1
    out = run(tree, tmp_path, test_images="seen_by_all", test_sessions=1)
    np.testing.assert_array_equal(out.test.image_ids, early)
    assert out.attrs["test_images"] == "seen_by_all" and out.attrs["test_sessions"] == 1
    assert not np.isin(every, out.train.image_ids).any()
    assert out.train.n_images == N_IMAGES - N_SHARED
    # every repeat of a test image is averaged, session 2's included
    ref = reference(tree, "paper")
    np.testing.assert_allclose(out.test.responses, np.stack([ref[i] for i in early]), atol=1e-5)
    # reading all sessions by the subject's own rule gives every shared image
    mine = run(tree, tmp_path, name="mine.hdf5", test_images="seen_by_subject")
    np.testing.assert_array_equal(mine.test.image_ids, every)
    back = load_prepared(tmp_path / "out.hdf5")
    assert back.attrs["test_images"] == "seen_by_all"


def test_expected_test_images_and_shots_stop_before_betas(tree, tmp_path):
    with pytest.raises(ValueError, match="907"):
        run(tree, tmp_path, test_images="seen_by_all", test_sessions=2, expected_test_images=907)
    with pytest.raises(ValueError, match=r"config key 'shots': 800 training images"):
        run(tree, tmp_path, min_train_images=800)
    assert not (tmp_path / "out.hdf5").exists()


def test_three_steps_compose(tree, tmp_path):
    # the voxel table, the trial plan and the accumulation each run alone
    voxels = prepare.voxel_table(tree.root, SUBJECT)
    assert voxels.n_voxels == int(tree.mask.sum())
    plan = prepare.trial_plan(tree.root, SUBJECT, [1, 2], protocol="paper")
    assert plan.parts == ["train", "test"] and len(plan.row_ids) == N_IMAGES
    means = prepare.accumulate_sessions(tree.root, SUBJECT, voxels, plan, protocol="paper")
    whole = run(tree, tmp_path)
    np.testing.assert_array_equal(means[: whole.train.n_images], whole.train.responses)


def test_corrupt_prepared_file_is_named(tree, tmp_path):
    from nrf.checks import NonFiniteError

    run(tree, tmp_path)
    path = tmp_path / "out.hdf5"
    with h5py.File(path, "r+") as f:
        f["train/responses"][1, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"out.hdf5: train/responses has 1 non-finite"):
        load_prepared(path, splits=("train",))
    path.write_bytes(path.read_bytes()[:2000])  # truncated
    with pytest.raises(OSError, match=r"out.hdf5: cannot open this prepared subject"):
        load_prepared(path)
