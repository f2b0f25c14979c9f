"""nrf.reporting.semantic: the eight semantic columns from per-subject metric CSVs."""

import numpy as np
import pandas as pd
import pytest

from nrf.decoding.image_metrics import METRICS
from nrf.frames import write_frame
from nrf.reporting.semantic import (
    semantic_columns,
    semantic_markdown_columns,
    semantic_note,
)

SUBJECTS = ["subj01", "subj02", "subj05"]


def write_csv(path, values, notes=None, backend="offline"):
    notes = notes or {}
    rows = [{"metric": m, "value": values.get(m, np.nan), "note": notes.get(m, "ok"), "backend": backend,
             "source": "nrf", "subject": "s"} for m in METRICS]
    rows.append({"metric": "feature_2way", "value": 0.7, "note": "extra", "backend": backend, "source": "nrf",
                 "subject": "s"})
    write_frame(pd.DataFrame(rows), path, "decoding_metrics")
    return path


def test_mean_sem_over_subjects_and_na(tmp_path):
    rng = np.random.default_rng(0)
    pix = rng.random(3)
    paths = [
        write_csv(tmp_path / f"{s}.csv", {"pixcorr": p, "ssim": 0.4}, {"alex2": "n/a: no AlexNet weights"})
        for s, p in zip(SUBJECTS, pix)
    ]
    paper = pd.DataFrame({"pixcorr": [0.261], "alex2": [0.916]}, index=["NRF"])
    table = semantic_columns({"NRF": paths}, SUBJECTS, paper)
    row = table.iloc[0]
    assert row["pixcorr_mean"] == pytest.approx(pix.mean())
    assert row["pixcorr_sem"] == pytest.approx(pix.std(ddof=1) / np.sqrt(3))
    assert row["pixcorr_subj02"] == pytest.approx(pix[1])
    assert row["pixcorr_paper"] == 0.261 and row["decoding_backend"] == "offline"
    assert np.isnan(row["alex2_mean"]) and row["alex2_paper"] == 0.916
    shown = semantic_markdown_columns(table)
    assert shown.loc[0, "Alex(2) ↑ (this run)"] == "n/a"
    assert shown.loc[0, "Alex(2) (paper)"] == "0.916"
    assert shown.loc[0, "PixCorr ↑ (this run)"] == f"{pix.mean():.3f} ± {pix.std(ddof=1) / np.sqrt(3):.3f}"
    assert "Eff ↓ (this run)" in shown.columns
    assert row["feature_2way_mean"] == pytest.approx(0.7)  # the extra, under its own label
    assert "not a paper column" in shown.columns[-1]
    note = semantic_note({"NRF": paths})
    assert "Alex(2): n/a: no AlexNet weights" in note and "offline" in note


def test_one_subject_na_makes_the_method_na(tmp_path):
    paths = [write_csv(tmp_path / "a.csv", {"pixcorr": 0.3}), write_csv(tmp_path / "b.csv", {})]
    table = semantic_columns({"NRF": paths}, SUBJECTS[:2])
    assert np.isnan(table.loc[0, "pixcorr_mean"])


def test_missing_metric_or_subject_is_an_error(tmp_path):
    bad = tmp_path / "bad.csv"
    write_frame(pd.DataFrame({"metric": ["pixcorr"], "value": [0.1], "note": [""], "backend": ["offline"],
                              "source": ["nrf"], "subject": ["s"]}), bad, "decoding_metrics")
    with pytest.raises(ValueError, match="bad.csv.*missing"):
        semantic_columns({"NRF": [bad]}, ["subj01"])
    with pytest.raises(ValueError, match="1 metric files for 3 subjects"):
        semantic_columns({"NRF": [bad]}, SUBJECTS)
