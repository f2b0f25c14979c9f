"""nrf.reporting.figure3: the grid of seen images and reconstructions."""

import h5py
import matplotlib.image
import numpy as np
import pytest

from nrf.decoding.reconstructions import Reconstructions, write_reconstructions
from nrf.reporting.figure3 import figure3, write_figure3


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    stimuli = tmp_path / "stimuli.hdf5"
    with h5py.File(stimuli, "w") as f:
        f["imgBrick"] = rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)
    ids = np.array([1, 4, 5, 9])
    recons = {}
    for source in ("measured", "linear", "nrf"):
        recons[source] = tmp_path / f"{source}.hdf5"
        write_reconstructions(recons[source], Reconstructions(rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), ids))
    return recons, stimuli


def test_grid_has_a_row_per_image_and_a_column_per_source(files, tmp_path):
    recons, stimuli = files
    fig = figure3(recons, stimuli, rows=[0, 2, 7], subject="subj01", backend="offline")
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["GT (seen)", "Measured fMRI", "Linear Regression", "NRF"]
    assert len(fig.axes) == 2 * 4  # row 7 is beyond the 4 test images and is dropped
    assert fig.axes[4].get_ylabel() == "image 5"
    write_figure3(recons, stimuli, tmp_path / "fig3.png", rows=[0, 1], subject="subj01", backend="offline")
    assert matplotlib.image.imread(tmp_path / "fig3.png").ndim == 3


def test_sources_must_share_test_images(files, tmp_path):
    recons, stimuli = files
    write_reconstructions(tmp_path / "other.hdf5",
                          Reconstructions(np.zeros((4, 8, 8, 3), np.uint8), np.array([1, 2, 3, 4])))
    recons["nrf"] = tmp_path / "other.hdf5"
    with pytest.raises(ValueError, match="other.hdf5: test images differ"):
        figure3(recons, stimuli, rows=[0], subject="subj01", backend="offline")
