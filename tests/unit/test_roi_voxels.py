"""Figure 4's regions are whole-brain: an ROI is its label inside the brain mask, as the
authors build it (haomiao8/NRF, nsd_data_processing/common.py, build_roi_masks), not its
label inside nsdgeneral. The ROI voxels outside nsdgeneral are prepared in a file of their
own (voxel set probe_rois), beside the prepared subject, and joined by the probe."""

import numpy as np
import pytest

from nrf.data import compact_betas, nsd_layout, nsd_tree, prepare, roi_voxels
from nrf.data.prepared import load_prepared
from nrf.data.roi_voxels import WholeBrainVoxels, outside_voxels, region_mask, region_positions
from nrf.data.simulate import simulate_nsd_tree

ROIS = {"EBA": {"atlas": "floc-bodies", "labels": [1]}, "V1": {"atlas": "prf-visualrois", "labels": [1, 2]}}
SUBJECT = "subj07"
SESSIONS = [1, 2, 3, 4]


def test_region_is_the_label_inside_the_brain_mask_not_inside_nsdgeneral():
    labels = np.zeros((3, 2, 2), np.int16)
    labels[0] = 1  # four voxels labelled, one of them outside the brain mask
    labels[1, 0, 0] = 2
    brainmask = np.ones_like(labels)
    brainmask[0, 1, 1] = 0
    nsdgeneral = np.zeros_like(labels)
    nsdgeneral[0, 0] = 1  # two of the labelled voxels in nsdgeneral
    mask = region_mask(labels, [1], brainmask)
    np.testing.assert_array_equal(mask, (labels == 1) & (brainmask > 0))
    assert mask.sum() == 3 and (mask & ~(nsdgeneral > 0)).sum() == 1  # one voxel nsdgeneral would have dropped
    assert region_mask(labels, [1, 2], brainmask).sum() == 4
    # the voxels outside nsdgeneral: labelled, in the brain mask, not in nsdgeneral; C-order of the grid
    out = outside_voxels(brainmask, nsdgeneral, {"floc-bodies": labels}, {"EBA": ("floc-bodies", [1, 2])})
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0]])
    assert out.dtype == np.int32
    with pytest.raises(ValueError, match="one \\(X, Y, Z\\) grid"):
        region_mask(labels, [1], brainmask[:2])


def test_region_order_is_label_by_label_in_grid_order():
    # the authors stack one ROI's voxels after another (V1v, then V1d), each in C-order of the grid
    ijk = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
    labels = np.array([2, 1, 2, 1])
    np.testing.assert_array_equal(region_positions(ijk, (2, 2, 2), labels, [1, 2]), [3, 1, 2, 0])
    np.testing.assert_array_equal(region_positions(ijk, (2, 2, 2), labels, [2]), [2, 0])


def test_unknown_atlas_is_named():
    with pytest.raises(ValueError, match="probes.rois.X: atlas 'floc-legs'"):
        roi_voxels.parse_rois({"X": {"atlas": "floc-legs", "labels": [1]}})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A simulated tree (its atlases reach outside nsdgeneral), the prepared subject and its probe_rois file."""
    tmp = tmp_path_factory.mktemp("roi_voxels")
    root = tmp / "tree"
    simulate_nsd_tree(root, subjects=[SUBJECT], n_train_images=60, n_test_images=20, repeats=3,
                      trials_per_session=60, image_size=16, seed=2)
    inside = prepare.prepare_subject(root, SUBJECT, sessions=SESSIONS, protocol="paper", out_path=tmp / "p.hdf5")
    outside = prepare.prepare_subject(root, SUBJECT, sessions=SESSIONS, protocol="paper", voxel_set="probe_rois",
                                      probe_rois=ROIS, out_path=tmp / "p.probe_rois.hdf5")
    return root, tmp, inside, outside


def test_whole_brain_regions_reach_outside_nsdgeneral(prepared):
    root, tmp, inside, outside = prepared
    whole = WholeBrainVoxels.join(load_prepared(tmp / "p.hdf5"), load_prepared(tmp / "p.probe_rois.hdf5"))
    brainmask = nsd_tree.load_volume(root, nsd_layout.brainmask(SUBJECT))[0] > 0
    nsdgeneral = nsd_tree.load_volume(root, nsd_layout.roi(SUBJECT, "nsdgeneral"))[0] > 0
    for name, roi in ROIS.items():
        volume = nsd_tree.load_volume(root, nsd_layout.roi(SUBJECT, roi["atlas"]))[0]
        expected = np.isin(volume, roi["labels"]) & brainmask  # the authors' region
        positions = whole.region(roi["atlas"], roi["labels"])
        assert len(positions) == expected.sum(), name
        assert (expected & ~nsdgeneral).sum() > 0, name  # the simulated atlas reaches outside nsdgeneral
        assert (positions >= whole.n_inside).sum() == (expected & ~nsdgeneral).sum(), name
        got = np.zeros_like(expected)
        got[tuple(whole.voxel_ijk[positions].T)] = True
        np.testing.assert_array_equal(got, expected)
    # the prepared subject's voxels come first, in its order; the rest in C-order of the grid
    np.testing.assert_array_equal(whole.voxel_ijk[: whole.n_inside], inside.voxel_ijk)
    flat = np.ravel_multi_index(tuple(outside.voxel_ijk.T), brainmask.shape)
    assert outside.n_voxels > 0 and (np.diff(flat) > 0).all()
    assert not (nsdgeneral[tuple(outside.voxel_ijk.T)]).any() and brainmask[tuple(outside.voxel_ijk.T)].all()
    # their coordinates are the MNI transform's at those voxels
    transform = nsd_tree.load_volume(root, nsd_layout.mni_transform(SUBJECT))[0]
    np.testing.assert_array_equal(whole.coords[whole.n_inside:], nsd_tree.mni_coordinates(transform, outside.voxel_ijk))
    assert outside.attrs["voxel_set"] == "probe_rois" and "floc-bodies" in outside.attrs["probe_rois"]
    assert "voxel_set" not in inside.attrs  # the prepared subject keeps the attributes it always had


def test_outside_responses_are_prepared_as_the_nsdgeneral_ones(prepared):
    # z-scored per voxel and session, averaged over repeats: the two files side by side are the
    # preparation of their union, as the authors prepare each ROI's voxels
    root, _, inside, outside = prepared
    union = prepare.VoxelTable(np.concatenate([inside.voxel_ijk, outside.voxel_ijk]), inside.attrs["grid_shape"],
                               None, None, None)
    plan = prepare.trial_plan(root, SUBJECT, SESSIONS, protocol="paper")
    means = prepare.accumulate_sessions(root, SUBJECT, union, plan, protocol="paper")
    n_train = inside.train.n_images
    np.testing.assert_allclose(np.hstack([inside.train.responses, outside.train.responses]), means[:n_train],
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outside.test.image_ids, inside.test.image_ids)


def test_join_refuses_files_that_do_not_belong_together(prepared, tmp_path):
    root, tmp, _, _ = prepared
    inside = load_prepared(tmp / "p.hdf5")
    with pytest.raises(ValueError, match="not a preparation of the probe's ROI voxels"):
        WholeBrainVoxels.join(inside, inside, source="p.hdf5")
    other = prepare.prepare_subject(root, SUBJECT, sessions=SESSIONS[:3], protocol="paper", voxel_set="probe_rois",
                                    probe_rois=ROIS, out_path=tmp_path / "o.hdf5")
    with pytest.raises(ValueError, match="o.hdf5: its sessions"):
        WholeBrainVoxels.join(inside, other, source=str(tmp_path / "o.hdf5"))


def test_stale_probe_roi_betas_are_refused_naming_the_file(prepared, tmp_path):
    """A compact file of the probe's ROI voxels made for other ROIs (or an nsdgeneral-only
    cache copied under its name) is refused, naming it and the command that rebuilds it."""
    root, _, inside, outside = prepared
    key = compact_betas.compact_key(nsd_layout.betas(SUBJECT, 1), "probe_rois")
    assert key.endswith("betas_session01.probe_rois.hdf5")
    betas = nsd_tree.session_betas(root, SUBJECT, 1, inside.voxel_ijk, "nifti")
    compact_betas.write_compact_betas(tmp_path / key, betas, inside.voxel_ijk, source_key=key,
                                      grid_shape=inside.attrs["grid_shape"])
    with pytest.raises(ValueError, match=f"{key}: its {inside.n_voxels:,} voxels differ .* a label of probes.rois"
                                         f".*--force .*{key}"):
        nsd_tree.session_betas(tmp_path, SUBJECT, 1, outside.voxel_ijk, "compact", "probe_rois")
    # the right voxels are read back as written, and the nsdgeneral file is a file of its own
    good = nsd_tree.session_betas(root, SUBJECT, 1, outside.voxel_ijk, "nifti")
    compact_betas.write_compact_betas(tmp_path / key, good, outside.voxel_ijk, source_key=key,
                                      grid_shape=inside.attrs["grid_shape"], voxel_set="probe_rois")
    np.testing.assert_array_equal(
        nsd_tree.session_betas(tmp_path, SUBJECT, 1, outside.voxel_ijk, "compact", "probe_rois"), good)
    with pytest.raises(FileNotFoundError, match="betas_session01.nsdgeneral.hdf5"):
        nsd_tree.session_betas(tmp_path, SUBJECT, 1, inside.voxel_ijk, "compact")
    with pytest.raises(ValueError, match="voxel_set must be one of"):
        compact_betas.compact_key(nsd_layout.betas(SUBJECT, 1), "union")
