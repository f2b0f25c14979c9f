"""Figure 4 and Tables 4-6 from synthetic rows: the numbers they show and the files they write."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nrf.checks import write_json
from nrf.experiments.ablations import training_summary, write_strategy_rows
from nrf.experiments.probes import write_rows
from nrf.frames import read_frame, write_frame
from nrf.reporting.ablation_tables import (
    paper_rows_for,
    write_architecture_table,
    write_table4,
)
from nrf.reporting.figure4 import summary, write_figure4
from nrf.reporting.tables import paper_values

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "reference" / "nrf_paper_tables.csv"


def _probe_rows(rng, panel, conditions, subject):
    rows = []
    for condition in conditions:
        for n in (20, 200, 800):
            for draw in range(3):
                rows.append({"panel": panel, "subject": subject, "condition": condition, "n_train": n, "draw": draw,
                             "pearson": rng.uniform(0, 0.5), "mse": rng.uniform(0.3, 0.4), "steps": 10,
                             "n_voxels": 40})
    return pd.DataFrame(rows)


def test_figure4_points_are_mean_and_sem_over_draws(tmp_path, rng):
    shuffle = _probe_rows(rng, "a", ["coordinates intact", "shuffled globally", "shuffled within ROI"], "subj01")
    transfer = pd.concat([_probe_rows(rng, roi, ["aligned", "shifted"], "subj07") for roi in ("EBA", "V1")])
    paths = [tmp_path / "s.csv", tmp_path / "t.csv"]
    write_rows(shuffle, paths[0])
    write_rows(transfer, paths[1])
    out = {k: tmp_path / f"fig4.{k}" for k in ("png", "pdf", "csv")}
    summ = write_figure4(paths, dataset="simulated", protocol="paper", out_png=out["png"], out_pdf=out["pdf"],
                         out_csv=out["csv"])
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["pdf"].read_bytes()[:4] == b"%PDF"
    assert len(summ) == 3 * 3 + 2 * 2 * 3
    point = summ[(summ["panel"] == "EBA") & (summ["condition"] == "shifted") & (summ["n_train"] == 200)].iloc[0]
    values = transfer[(transfer["panel"] == "EBA") & (transfer["condition"] == "shifted")
                      & (transfer["n_train"] == 200)]["pearson"].to_numpy()
    assert point["pearson_mean"] == pytest.approx(values.mean())
    assert point["pearson_sem"] == pytest.approx(values.std(ddof=1) / np.sqrt(3))
    assert summary(shuffle.iloc[:1])["pearson_sem"].isna().all()  # one draw: no SEM


def test_table4_rows_are_the_papers_labels_with_its_values(tmp_path, rng):
    rows = pd.DataFrame([
        {"method": m, "subject": "subj07", "n_train": 800, "draw": d, "pearson": r + 0.01 * d, "mse": 0.3, "steps": 5}
        for d in range(2)
        for m, r in (("finetune both", 0.4), ("finetune image block only", 0.2), ("finetune MLP only", 0.38))
    ])
    write_strategy_rows(rows, tmp_path / "rows.csv")
    out = {k: tmp_path / f"t4.{k}" for k in ("csv", "md", "html")}
    table = write_table4(tmp_path / "rows.csv", paper_csv=PAPER, base="subj01", target="subj07", protocol="clean",
                         dataset="simulated", test_images="seen_by_all", finetune_steps=200, out_csv=out["csv"],
                         out_md=out["md"], out_html=out["html"])
    both = table.set_index("method").loc["finetune both"]
    assert both["pearson_mean"] == pytest.approx(0.405) and both["pearson_sem"] == pytest.approx(0.005)
    assert both["pearson_paper"] == pytest.approx(0.234)
    assert np.isnan(table.set_index("method").loc["finetune MLP only", "mse_paper"])  # empty in the paper
    md = out["md"].read_text()
    assert "finetune both" in md and "0.405 ± 0.005" in md and "simulated" in md
    assert "image block only − both: -0.200" in md
    assert "<table" in out["html"].read_text()


def _scores(path, r):
    write_frame(pd.DataFrame({"voxel": np.arange(len(r)), "pearson": r, "mse": 0.5 - r / 2}), path, "scores")
    return path


def test_width_table_sets_scaled_widths_beside_the_papers_by_rank(tmp_path, rng):
    paper = paper_values(PAPER, "table6")
    rows, note = paper_rows_for("width", [128, 64, 256], paper)
    assert rows == ["NRF width 4096", "NRF width 2048", "NRF width 8192"] and "scaled down" in note
    assert paper_rows_for("width", [2048, 4096, 8192], paper)[0] == ["NRF width 2048", "NRF width 4096",
                                                                     "NRF width 8192"]
    scores = [_scores(tmp_path / f"w{w}.csv", rng.uniform(0, 0.6, 50)) for w in (64, 128, 256)]
    # width 64 peaked and stopped early; 128 ran to the cap past its peak; 256 was still rising at the cap
    histories = {64: [(100, 0.2), (200, 0.3), (300, 0.25), (400, 0.24)], 128: [(200, 0.3), (400, 0.35), (600, 0.34)],
                 256: [(200, 0.1), (400, 0.2), (600, 0.3)]}
    trainings = []
    for w, points in histories.items():
        summary = training_summary([{"step": st, "val_median_r": r} for st, r in points], max_steps=600)
        trainings.append(tmp_path / f"w{w}.json")
        write_json(trainings[-1], summary)
    out = {k: tmp_path / f"t6.{k}" for k in ("csv", "md", "html")}
    table = write_architecture_table("table6", "width", [64, 128, 256], scores, paper_csv=PAPER, subject="subj01",
                                     protocol="paper", dataset="simulated", test_images="seen_by_all",
                                     fixed={"depth": 4}, max_steps=600, out_csv=out["csv"], out_md=out["md"],
                                     out_html=out["html"], trainings=trainings)
    assert table["improving_at_cap"].tolist() == [False, False, True]
    assert table["steps"].tolist() == [400, 600, 600] and table["best_step"].tolist() == [200, 400, 600]
    assert "cap ended training: NRF width 256 (best" in out["md"].read_text()
    assert "600 (600) still rising" in out["md"].read_text()
    assert list(table["method"]) == ["NRF width 64", "NRF width 128", "NRF width 256"]
    assert table["pearson_paper"].tolist() == pytest.approx([0.358, 0.36, 0.353])
    assert table["pearson_mean"].iloc[0] == pytest.approx(np.median(read_frame(scores[0], "scores")["pearson"]))
    assert "scaled down" in out["md"].read_text() and "This run" in out["md"].read_text()
    assert "none stopped before step" not in out["md"].read_text()  # ablations.min_steps unset
    write_architecture_table("table6", "width", [64, 128, 256], scores, paper_csv=PAPER, subject="subj01",
                             protocol="paper", dataset="simulated", test_images="seen_by_all", fixed={"depth": 4},
                             max_steps=600, out_csv=out["csv"], out_md=out["md"], out_html=out["html"],
                             trainings=trainings, min_steps=400)
    assert "(at most 600 steps, none stopped before step 400, early stopping" in out["md"].read_text()
    write_architecture_table("table6", "width", [64, 128, 256], scores, paper_csv=PAPER, subject="subj01",
                             protocol="paper", dataset="simulated", test_images="seen_by_all", fixed={"depth": 4},
                             max_steps=600, out_csv=out["csv"], out_md=out["md"], out_html=out["html"],
                             trainings=trainings, min_steps=1500)
    assert "(at most 600 steps, none stopped before step 600, early stopping" in out["md"].read_text()
