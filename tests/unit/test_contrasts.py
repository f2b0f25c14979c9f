"""In-silico contrasts: the statistic against scipy, and on the simulator's ground
truth the face-vs-place contrast peaks where the simulator put faces and places."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import stats

from nrf.data.simulate import CATEGORIES, REGIONS, SimulatedBrain, SimulationParams
from nrf.reporting.fig_contrast import plot_contrast
from nrf.volumes.contrasts import contrast_maps, peak, write_contrast
from nrf.volumes.grid import grid_points, mni_grid


def test_contrast_maps_match_scipy_welch():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 1.0, (12, 40)), rng.normal(0.0, 2.0, (9, 40))
    diff, t = contrast_maps(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-5)
    np.testing.assert_allclose(diff, a.mean(0) - b.mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        contrast_maps(a[:1], b)


@pytest.fixture(scope="module")
def brain():
    return SimulatedBrain(SimulationParams(subjects=("subj01",), n_train_images=200, n_test_images=40, seed=0,
                                           trials_per_session=60))


def test_simulated_face_vs_place_contrast_peaks_in_face_and_place_regions(brain, tmp_path):
    category = brain.images["category"]
    faces = np.flatnonzero(category == CATEGORIES.index("face"))[:30]
    places = np.flatnonzero(category == CATEGORIES.index("place"))[:30]
    shape, affine = mni_grid(3.0)
    points = grid_points(shape, affine)
    mask = brain.anatomy(points)["nsdgeneral"].reshape(shape)
    paths = write_contrast(lambda p: brain.responses(faces, p), lambda p: brain.responses(places, p), mask, affine,
                           tmp_path / "faces_vs_places", chunk_points=500)
    t_img = nib.load(paths["t"])
    assert int(t_img.header["sform_code"]) == 4
    where = peak(t_img, mask)
    assert where["max_t"] > 5 and where["min_t"] < -5
    regions = brain.regions(np.array([where["max_mm"], where["min_mm"]]))
    assert REGIONS[regions[0]] == "face" and REGIONS[regions[1]] == "place"
    # the map agrees with the direct computation at the peak
    diff_img = nib.load(paths["difference"])
    i = tuple(np.rint(nib.affines.apply_affine(np.linalg.inv(affine), where["max_mm"])).astype(int))
    expected = brain.responses(faces, [where["max_mm"]]).mean() - brain.responses(places, [where["max_mm"]]).mean()
    assert np.asarray(diff_img.dataobj)[i] == pytest.approx(expected, rel=1e-4)
    png = tmp_path / "faces_vs_places.png"
    plot_contrast(paths["t"], png, title="simulator truth", label_a="faces", label_b="places")
    assert png.stat().st_size > 20_000
