"""The probes' array functions: shuffles, ROI sets and the in-brain shift."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull, Delaunay

from nrf.perturbations import (
    inside_hull,
    roi_groups,
    roi_mask,
    shift_inside,
    shuffle_global,
    shuffle_within_rois,
)


@pytest.fixture
def brain(rng):
    """Voxels of an ellipsoidal 'brain' on a 3 mm lattice, with two atlases."""
    g = np.arange(-60, 61, 4.0)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pts = pts[((pts / [60, 50, 40]) ** 2).sum(1) <= 1].astype(np.float32)
    vis = np.where(pts[:, 1] < -30, 1 + (pts[:, 0] > 0), 0).astype(np.int16)  # two "V1" halves at the back
    body = np.where(np.linalg.norm(pts - [30, 0, 0], axis=1) < 10, 1, 0).astype(np.int16)  # one "EBA" ball
    return pts, {"prf-visualrois": vis, "floc-bodies": body}


def test_global_shuffle_is_a_seeded_permutation():
    perm = shuffle_global(500, [0, 1])
    assert perm.shape == (500,) and np.array_equal(np.sort(perm), np.arange(500))
    assert np.array_equal(perm, shuffle_global(500, [0, 1]))  # deterministic
    assert not np.array_equal(perm, shuffle_global(500, [0, 2]))
    assert (perm != np.arange(500)).mean() > 0.9  # it does move voxels


def test_within_roi_shuffle_keeps_each_roi_coordinate_set(brain):
    pts, rois = brain
    groups = roi_groups(rois, ["prf-visualrois", "floc-bodies"])
    perm = shuffle_within_rois(groups, 7)
    assert np.array_equal(np.sort(perm), np.arange(len(pts)))
    assert np.array_equal(groups[perm], groups)  # no voxel leaves its group
    for g in np.unique(groups):  # each group's set of coordinates is unchanged
        members = groups == g
        a = pts[members][np.lexsort(pts[members].T)]
        b = pts[perm][members][np.lexsort(pts[perm][members].T)]
        assert np.array_equal(a, b)
    assert (perm != np.arange(len(pts))).mean() > 0.9  # unlabelled voxels move too, among themselves
    assert np.array_equal(perm, shuffle_within_rois(groups, 7))


def test_roi_groups_first_atlas_wins_and_zero_is_unlabelled():
    rois = {"a": np.array([0, 1, 1, 2, 0]), "b": np.array([1, 1, 0, 0, 0])}
    assert roi_groups(rois, ["a", "b"]).tolist() == [3, 1, 1, 2, 0]
    assert roi_groups(rois, ["b", "a"]).tolist() == [1, 1, 2, 3, 0]
    with pytest.raises(ValueError, match="floc-words"):
        roi_groups(rois, ["a", "floc-words"])


def test_roi_mask_selects_labels(brain):
    pts, rois = brain
    v1 = roi_mask(rois, "prf-visualrois", [1, 2])
    assert v1.shape == (len(pts),) and v1.dtype == bool
    assert np.array_equal(v1, rois["prf-visualrois"] > 0)
    assert roi_mask(rois, "floc-bodies", [1]).sum() == (rois["floc-bodies"] == 1).sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shift_moves_by_the_distance_and_stays_inside(brain, seed):
    pts, rois = brain
    eba = pts[rois["floc-bodies"] == 1]
    shifted, vector = shift_inside(eba, pts, 20.0, "random", seed)
    assert shifted.shape == eba.shape and shifted.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(20.0)
    assert np.allclose(shifted - eba, vector, atol=1e-4)  # a rigid translation
    assert inside_hull(shifted, pts).all()
    # against scipy's Delaunay triangulation of the hull's vertices (a second route)
    vertices = pts[ConvexHull(pts).vertices]
    assert (Delaunay(vertices).find_simplex(shifted.astype(np.float64) * 0.999 + vertices.mean(0) * 0.001) >= 0).all()
    again, vector2 = shift_inside(eba, pts, 20.0, "random", seed)
    assert np.array_equal(again, shifted) and np.array_equal(vector, vector2)


def test_shift_along_a_fixed_direction_or_a_clear_error(brain):
    pts, rois = brain
    eba = pts[rois["floc-bodies"] == 1]  # centred at x = 30, radius 10; the brain reaches x = 60
    shifted, vector = shift_inside(eba, pts, 15.0, [-1, 0, 0], 0)
    assert np.allclose(vector, [-15, 0, 0])
    with pytest.raises(ValueError, match="shift_mm"):
        shift_inside(eba, pts, 25.0, [1, 0, 0], 0)  # would leave the brain on the right
    with pytest.raises(ValueError, match="shift_mm"):
        shift_inside(eba, pts, 500.0, "random", 0)
