"""The resolution experiment's pieces: the func-grid affine, interpolation of
voxel-locked predictions (exact for a linear field), the lattice, the scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from nrf.experiments.resolution import (
    func_grid_affine,
    heldout_lattice,
    interpolate_voxels,
    score,
)


@pytest.fixture
def grid():
    """A rotated 4.3 mm func grid (all voxels of a 10^3 block) and its affine to MNI."""
    angle = np.deg2rad(7.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = 4.3 * rot
    affine[:3, 3] = [-20.0, -90.0, -20.0]
    ijk = np.argwhere(np.ones((10, 10, 10), bool))
    return affine, ijk, ijk @ affine[:3, :3].T + affine[:3, 3]


def test_func_grid_affine_recovers_the_map(grid):
    affine, ijk, mni = grid
    np.testing.assert_allclose(func_grid_affine(ijk, mni), affine, atol=1e-9)


def test_trilinear_is_scipys_and_exact_for_linear_fields(grid, rng):
    affine, ijk, mni = grid
    values = np.stack([mni @ [0.3, -0.1, 0.2] + 1.0, np.sin(mni[:, 0] / 9.0)])  # (2, n_vox)
    inside_ijk = rng.uniform(0.5, 8.5, (200, 3))
    points = inside_ijk @ affine[:3, :3].T + affine[:3, 3]
    tri = interpolate_voxels(values, ijk, affine, points, "trilinear")
    np.testing.assert_allclose(tri[0], points @ [0.3, -0.1, 0.2] + 1.0, rtol=1e-4, atol=1e-4)
    axes = [np.arange(10)] * 3
    ref = RegularGridInterpolator(axes, values[1].reshape(10, 10, 10))(inside_ijk)
    np.testing.assert_allclose(tri[1], ref, rtol=1e-4, atol=1e-5)
    near = interpolate_voxels(values, ijk, affine, points, "nearest")
    idx = np.ravel_multi_index(tuple(np.rint(inside_ijk).astype(int).T), (10, 10, 10))
    np.testing.assert_allclose(near, values[:, idx], rtol=1e-6)
    with pytest.raises(ValueError, match="method"):
        interpolate_voxels(values, ijk, affine, points, "cubic")


def test_missing_neighbours_do_not_pull_to_zero(grid):
    affine, ijk, mni = grid
    keep = ijk[:, 0] < 5  # half the block measured
    values = np.full((1, keep.sum()), 2.0)
    points = np.array([[5.4, 4.0, 4.0]]) @ affine[:3, :3].T + affine[:3, 3]  # beyond the last measured plane
    assert interpolate_voxels(values, ijk[keep], affine, points, "trilinear")[0, 0] == pytest.approx(2.0)


def test_lattice_lies_in_the_region_off_the_training_grid(grid):
    affine, ijk, mni = grid
    pts = heldout_lattice(mni, lambda p: p[:, 2] < 0, spacing_mm=1.0, max_points=500, seed=0)
    assert len(pts) == 500 and (pts[:, 2] < 0).all()
    again = heldout_lattice(mni, lambda p: p[:, 2] < 0, spacing_mm=1.0, max_points=500, seed=0)
    np.testing.assert_array_equal(pts, again)
    d = np.linalg.norm(pts[:, None] - mni[None], axis=-1).min(1)
    assert d.max() <= 4.3 + 1e-6 and np.median(d) > 0.5  # near, but not on, the training voxels


def test_score_is_pearson_across_images(rng):
    truth = rng.normal(size=(30, 50))
    s = score(truth + 0.1 * rng.normal(size=truth.shape), truth)
    assert 0.98 < s["r_mean"] < 1.0 and s["n_points"] == 50
    assert s["r_sem"] > 0
