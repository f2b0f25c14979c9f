"""Readers of an NSD-layout tree, on tiny hand-made volumes."""

import nibabel as nib
import numpy as np
import pytest
import scipy.io

from nrf.data import compact_betas, nsd_layout, nsd_tree

GRID = (4, 5, 3)


def _save_nifti(root, key, data):
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_select_voxels_is_c_order_of_mask(rng):
    brainmask = (rng.random(GRID) > 0.3).astype(np.uint8)
    nsdgeneral = rng.integers(-1, 2, size=GRID)
    ijk = nsd_tree.select_voxels(brainmask, nsdgeneral)
    expected = [
        (i, j, k)
        for i in range(GRID[0])
        for j in range(GRID[1])
        for k in range(GRID[2])
        if brainmask[i, j, k] > 0 and nsdgeneral[i, j, k] > 0
    ]
    assert ijk.dtype == np.int32 and ijk.shape == (len(expected), 3)
    assert [tuple(r) for r in ijk] == expected


def test_mni_coordinates_known_indices():
    transform = np.ones(GRID + (3,), dtype=np.float32)
    transform[1, 2, 0] = (91, 127, 73)  # 1-based centre of MNI152 1 mm -> origin
    transform[3, 4, 2] = (1, 1, 1)
    transform[0, 0, 0] = nsd_layout.TRANSFORM_INVALID  # not selected: ignored
    ijk = np.array([[1, 2, 0], [3, 4, 2]], dtype=np.int32)
    xyz = nsd_tree.mni_coordinates(transform, ijk)
    assert xyz.dtype == np.float32
    np.testing.assert_array_equal(xyz, [[0, 0, 0], [90, -126, -72]])


def test_mni_coordinates_invalid_voxels_are_counted():
    transform = np.full(GRID + (3,), 50.0, dtype=np.float32)
    transform[0, 0, 0, 1] = nsd_layout.TRANSFORM_INVALID
    transform[1, 1, 1] = nsd_layout.TRANSFORM_INVALID
    ijk = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], dtype=np.int32)
    with pytest.raises(ValueError, match=r"subj03: .*MNI-to-func1pt8.*: 2 of 3 selected voxels"):
        nsd_tree.mni_coordinates(transform, ijk, source="subj03: " + nsd_layout.mni_transform("subj03"))


def test_roi_labels_land_on_their_voxels(tmp_path):
    ijk = np.array([[0, 0, 0], [1, 2, 0], [3, 4, 2]], dtype=np.int32)
    for n, atlas in enumerate(nsd_layout.ROI_ATLASES):
        vol = np.full(GRID, -1, dtype=np.int16)
        vol[1, 2, 0] = n + 1
        vol[3, 4, 2] = n + 2
        vol[2, 2, 2] = 7  # unselected
        _save_nifti(tmp_path, nsd_layout.roi("subj01", atlas), vol)
    rois = nsd_tree.roi_labels(tmp_path, "subj01", ijk, GRID)
    assert set(rois) == set(nsd_layout.ROI_ATLASES)
    for n, atlas in enumerate(nsd_layout.ROI_ATLASES):
        assert rois[atlas].dtype == np.int16
        np.testing.assert_array_equal(rois[atlas], [0, n + 1, n + 2])


def test_load_volume_names_the_missing_file(tmp_path):
    key = nsd_layout.brainmask("subj01")
    with pytest.raises(FileNotFoundError, match="brainmask.nii.gz"):
        nsd_tree.load_volume(tmp_path, key)
    (tmp_path / key).parent.mkdir(parents=True)
    (tmp_path / key).write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="brainmask.nii.gz"):
        nsd_tree.load_volume(tmp_path, key)


def test_read_expdesign_squeezes_matlab_shapes(tmp_path):
    path = tmp_path / nsd_layout.EXPDESIGN
    path.parent.mkdir(parents=True)
    scipy.io.savemat(
        path,
        {
            "masterordering": np.array([[1, 4, 2, 4]], dtype=np.float64),
            "subjectim": np.arange(1, 8 * 5 + 1).reshape(8, 5).astype(np.float64),
            "sharedix": np.array([[1, 2]]),
        },
    )
    ex = nsd_tree.read_expdesign(tmp_path)
    assert ex["masterordering"].shape == (4,) and ex["masterordering"].dtype == np.int64
    assert ex["subjectim"].shape == (8, 5) and ex["subjectim"].dtype == np.int64
    assert ex["sharedix"].shape == (2,) and ex["sharedix"].dtype == np.int64
    np.testing.assert_array_equal(ex["masterordering"], [1, 4, 2, 4])


def test_session_betas_nifti_and_compact_agree(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(nsd_tree, "NIFTI_CHUNK_TRIALS", 4)  # 6 trials: read as 4 + 2
    betas4d = rng.integers(-900, 900, size=GRID + (6,)).astype(np.int16)
    key = nsd_layout.betas("subj01", 1)
    _save_nifti(tmp_path, key, betas4d)
    ijk = np.array([[0, 1, 2], [3, 0, 1], [3, 4, 2]], dtype=np.int32)
    expected = np.stack([betas4d[i, j, k] for i, j, k in ijk], axis=1)  # (T, n)
    compact_betas.write_compact_betas(
        tmp_path / compact_betas.compact_key(key), expected, ijk, source_key=key, grid_shape=GRID
    )
    for fmt in ("nifti", "compact"):
        got = nsd_tree.session_betas(tmp_path, "subj01", 1, ijk, fmt)
        assert got.dtype == np.int16 and got.shape == (6, 3)
        np.testing.assert_array_equal(got, expected)
        assert nsd_tree.session_trial_count(tmp_path, "subj01", 1, fmt) == 6
    with pytest.raises(ValueError, match=r"nsdgeneral.hdf5: its 3 voxels differ from the 2 selected"):
        nsd_tree.session_betas(tmp_path, "subj01", 1, ijk[:2], "compact")
    with pytest.raises(FileNotFoundError, match="betas_session02"):
        nsd_tree.session_betas(tmp_path, "subj01", 2, ijk, "nifti")
