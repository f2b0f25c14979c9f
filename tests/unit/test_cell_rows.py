"""Experiments that repeat an adaptation cell's training read its row instead
(nrf.experiments.adaptation.read_cell_row): Table 4's "finetune both", the
shuffle probe's intact arm."""

import numpy as np
import pytest

from nrf.experiments.adaptation import read_cell_row, write_cell
from nrf.experiments.methods import SCRATCH, base_label


@pytest.fixture
def cell_csv(tmp_path):
    rng = np.random.default_rng(0)
    results = {m: {"predictions": rng.normal(size=(5, 7)).astype(np.float32), "r": rng.uniform(size=7),
                   "pearson": 0.3 + 0.1 * k, "mse": 0.5 - 0.1 * k, "steps": 40 + k}
               for k, m in enumerate((base_label("subj01", "subj07"), SCRATCH))}
    write_cell(results, target="subj07", n_train=800, draw=1, protocol="paper", test_ids=np.arange(5),
               out_hdf5=tmp_path / "n800_draw1.hdf5", out_csv=tmp_path / "n800_draw1.csv")
    return tmp_path / "n800_draw1.csv"


def test_a_method_row_is_read_with_its_steps(cell_csv):
    row = read_cell_row(cell_csv, base_label("subj01", "subj07"), "subj07", 800, 1)
    assert row == {"pearson": pytest.approx(0.3), "mse": pytest.approx(0.5), "steps": 40}
    assert read_cell_row(cell_csv, SCRATCH, "subj07", 800, 1)["steps"] == 41


@pytest.mark.parametrize("method, target, n, draw", [
    (base_label("subj02", "subj07"), "subj07", 800, 1),  # a base the cell did not finetune
    (SCRATCH, "subj05", 800, 1), (SCRATCH, "subj07", 200, 1), (SCRATCH, "subj07", 800, 0),
])
def test_another_cells_row_is_refused_naming_the_file(cell_csv, method, target, n, draw):
    with pytest.raises(ValueError, match="n800_draw1.csv"):
        read_cell_row(cell_csv, method, target, n, draw)
