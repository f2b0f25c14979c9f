"""Table 1: medians over voxels, mean ± SEM over subjects, paper values beside."""

import numpy as np
import pandas as pd
import pytest

from nrf.frames import FrameError, read_frame, write_frame
from nrf.reporting.tables import mean_sem, paper_values, write_table1


def _scores(path, pearson, mse):
    write_frame(pd.DataFrame({"voxel": np.arange(len(pearson)), "pearson": pearson, "mse": mse}), path, "scores")
    return path


@pytest.fixture
def paper_csv(tmp_path):
    path = tmp_path / "paper.csv"
    rows = pd.DataFrame(
        {
            "table": ["table1"] * 4 + ["table2"],
            "method": ["NRF", "NRF", "Linear Regression", "Linear Regression", "NRF scratch"],
            "metric": ["pearson", "mse", "pearson", "mse", "pearson"],
            "value": [0.358, 0.345, 0.323, 0.353, 0.1],
        }
    ).assign(target_subject="mean", base_subjects=None, train_images="full", note=None)
    write_frame(rows, path, "paper")
    return path


def test_paper_values_pivot(paper_csv):
    paper = paper_values(paper_csv, "table1")
    assert paper.at["NRF", "pearson"] == pytest.approx(0.358)
    assert "NRF scratch" not in paper.index


def test_table1_cells(tmp_path, rng, paper_csv):
    subjects = ["subj01", "subj02", "subj05"]
    files = {"NRF": [], "Linear Regression": []}
    medians = {"NRF": [], "Linear Regression": []}
    for method, shift in (("NRF", 0.3), ("Linear Regression", 0.1)):
        for s in subjects:
            r = rng.uniform(-0.2, 0.6, size=101) + shift
            medians[method].append(np.median(r))
            files[method].append(_scores(tmp_path / f"{method}_{s}.csv", r, rng.uniform(0.5, 1.0, 101)))
    table = write_table1(
        files, paper_csv=paper_csv, subjects=subjects, protocol="clean", dataset="simulated",
        test_images="seen_by_all", out_csv=tmp_path / "t.csv", out_md=tmp_path / "t.md", out_html=tmp_path / "t.html",
    )
    row = table.set_index("method").loc["NRF"]
    assert row["pearson_mean"] == pytest.approx(np.mean(medians["NRF"]))
    assert row["pearson_sem"] == pytest.approx(np.std(medians["NRF"], ddof=1) / np.sqrt(3))
    assert row["pearson_paper"] == pytest.approx(0.358)
    assert row["pearson_subj05"] == pytest.approx(medians["NRF"][2])
    written = read_frame(tmp_path / "t.csv", "table")
    assert list(written["method"]) == ["NRF", "Linear Regression"]
    assert set(written["protocol"]) == {"clean"}
    md = (tmp_path / "t.md").read_text()
    assert "clean" in md and "0.358" in md and "±" in md
    assert "every simulated subject has the same sessions" in md  # how the test-image rule applied
    page = (tmp_path / "t.html").read_text()
    assert "<table" in page and f"{np.mean(medians['NRF']):.3f}" in page and "<b>clean</b>" in page


def test_undefined_r_counts_as_zero_and_corrupt_mse_stops(tmp_path, paper_csv):
    import hashlib

    from nrf.checks import CorruptFileError
    from nrf.reporting.tables import subject_summary

    path = _scores(tmp_path / "a.csv", [np.nan, np.nan, 0.5], [1.0, 1.0, 1.0])
    assert subject_summary(path)["pearson"] == 0.0  # nanmedian would give 0.5
    with pytest.raises(FrameError, match=r"b.csv \(before writing\).*'mse' has 1 empty or NaN"):
        _scores(tmp_path / "b.csv", [0.1, 0.2, 0.3], [1.0, np.nan, 1.0])
    # a NaN written into a file after the fact breaks its checksum
    bad = _scores(tmp_path / "b.csv", [0.1, 0.2, 0.3], [1.0, 1.0, 1.0])
    bad.write_text(bad.read_text().replace("1,0.2,1\n", "1,0.2,\n"))
    with pytest.raises(CorruptFileError, match="b.csv: this scores CSV is corrupt"):
        subject_summary(bad)
    # a NaN mse under a valid checksum (a writer bug) still stops, with the file named
    body = b"voxel,pearson,mse\n0,0.1,1\n1,0.2,\n"
    bad.write_bytes(body + b"# sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n")
    with pytest.raises(FrameError, match="b.csv: this scores CSV column 'mse' has 1 empty or NaN"):
        subject_summary(bad)


def test_table1_rejects_missing_subject(tmp_path, paper_csv):
    path = _scores(tmp_path / "a.csv", [0.1, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match="1 score files for 2 subjects"):
        write_table1(
            {"NRF": [path]}, paper_csv=paper_csv, subjects=["subj01", "subj02"], protocol="paper",
            dataset="simulated", test_images="seen_by_all", out_csv=tmp_path / "t.csv", out_md=tmp_path / "t.md",
            out_html=tmp_path / "t.html",
        )


def test_mean_sem_single_value_has_no_sem():
    mean, sem = mean_sem([0.3])
    assert mean == pytest.approx(0.3) and np.isnan(sem)


def test_a_kinds_text_columns_stay_text(tmp_path):
    """A kind's "str" columns are read as text: the paper's N images, all digits here, key the cells as
    "20" and "200", not as the integers 20 and 200 (which would match no adaptation table's row)."""
    from nrf.reporting.adaptation_tables import paper_cells

    rows = pd.DataFrame({"table": ["table2"] * 2, "target_subject": "subj07", "base_subjects": None,
                         "train_images": ["20", "200"], "method": "NRF scratch", "metric": "pearson",
                         "value": [0.1, 0.2], "note": None})
    write_frame(rows, tmp_path / "paper.csv", "paper")
    assert set(paper_cells(tmp_path / "paper.csv", "table2")) == {("20", "NRF scratch"), ("200", "NRF scratch")}
    assert read_frame(tmp_path / "paper.csv", "paper")["train_images"].tolist() == ["20", "200"]
