"""The claims page: verdicts from synthetic table CSVs (holds / reversed / undecided,
a missing table -> not run), and the page built from an empty or partial results folder."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nrf.checks import CorruptFileError
from nrf.frames import read_frame, write_frame
from nrf.reporting import claims as C

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "reference" / "nrf_paper_tables.csv"
SUBJECTS = ("subj01", "subj02", "subj05", "subj07")


def test_decide_uses_two_sem():
    assert C.decide(0.05, 0.01) == C.HOLDS
    assert C.decide(-0.05, 0.01) == C.REVERSED
    assert C.decide(0.015, 0.01) == C.UNDECIDED
    assert C.decide(-0.02, 0.01) == C.UNDECIDED  # exactly 2 SEM is not beyond it
    assert C.decide(0.05, math.nan) == C.NO_SPREAD
    assert C.decide(math.nan, 0.01) == C.NOT_RUN
    # equality claims
    assert C.decide(0.01, 0.01, expect=0) == C.HOLDS
    assert C.decide(0.05, 0.01, expect=0) == C.DIFFERS
    # the paper's direction can be "a below b"
    assert C.decide(-0.05, 0.01, expect=-1) == C.HOLDS


def test_combine():
    assert C.combine([C.HOLDS, C.HOLDS]) == C.HOLDS
    assert C.combine([C.REVERSED, C.REVERSED]) == C.REVERSED
    assert C.combine([C.HOLDS, C.REVERSED]) == C.MIXED
    assert C.combine([C.HOLDS, C.UNDECIDED, C.UNDECIDED]) == "partly holds (1 of 3)"
    assert C.combine([C.REVERSED, C.UNDECIDED]) == "partly reversed (1 of 2)"
    assert C.combine([C.UNDECIDED, C.NO_SPREAD]) == C.UNDECIDED
    assert C.combine([C.NO_SPREAD]) == C.NO_SPREAD
    assert C.combine([C.NOT_RUN, C.HOLDS]) == C.HOLDS
    assert C.combine([]) == C.NOT_RUN


def _write(results: Path, rel: str, rows) -> None:
    path = results / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_frame(pd.DataFrame(rows), path, "table", float_format=None)  # as the rules write a table


def _table1(results, nrf, linear, fwrf):
    rows = []
    for method, values in (("Linear Regression", linear), ("fWRF", fwrf), ("NRF", nrf)):
        row = {"method": method, "protocol": "paper", "dataset": "simulated", "n_subjects": len(values),
               "pearson_mean": np.mean(values), "pearson_sem": np.std(values, ddof=1) / 2}
        row.update({f"pearson_{s}": v for s, v in zip(SUBJECTS, values)})
        row.update({"mse_mean": 0.5, "mse_sem": 0.01})
        row.update({f"mse_{s}": 0.5 for s in SUBJECTS})
        rows.append(row)
    _write(results, "tables/table1.csv", rows)


def _adaptation(results, scratch, linear, ensemble, sem=0.01):
    """Tables 2, 7, 8, 9 with the given means at N = 20 and 200 (one value per target, or a scalar)."""
    for k, (name, target) in enumerate(C.ADAPTATION_TABLES.items()):
        rows = []
        for n in ("20", "200"):
            for method, means in ((C.LINEAR, linear), (C.SCRATCH, scratch), (C.ENSEMBLE, ensemble),
                                  (C.AVERAGE, ensemble)):
                m = means[k] if np.ndim(means) else means
                rows.append({"target": target, "protocol": "paper", "dataset": "simulated", "train_images": n,
                             "method": method, "n_draws": 3, "pearson_mean": m + (0.05 if n == "200" else 0),
                             "pearson_sem": sem, "mse_mean": 0.5, "mse_sem": 0.01})
        rows.append({"target": target, "train_images": "full", "method": "NRF (all data)", "n_draws": 1,
                     "pearson_mean": 0.5, "pearson_sem": np.nan})
        _write(results, f"tables/{name}.csv", rows)


def _by(rows: pd.DataFrame, column="run_verdict") -> dict:
    return dict(zip(rows["claim"], rows[column]))


def test_empty_results_folder_is_not_run(tmp_path):
    rows = C.claim_rows(PAPER, tmp_path)
    assert set(rows["run_verdict"]) == {C.NOT_RUN}
    assert set(rows["claims_verdict"]) == {C.NOT_RUN}
    assert all(r.startswith("Not built") for r in rows["run_reason"])
    # the paper's side is filled whatever ran
    assert rows.set_index("claim").at["baselines", "paper_numbers"].startswith("NRF 0.358")


def test_baselines_paired_over_subjects(tmp_path):
    # NRF above linear in every subject (holds); fWRF tied within the subjects' spread (undecided)
    _table1(tmp_path, nrf=[0.40, 0.42, 0.38, 0.41], linear=[0.30, 0.33, 0.29, 0.31], fwrf=[0.41, 0.40, 0.39, 0.40])
    f = C._baselines(tmp_path)
    verdicts = {c.label: c.verdict for c in f.comparisons}
    assert verdicts == {"NRF − Linear Regression": C.HOLDS, "NRF − fWRF": C.UNDECIDED}
    assert f.verdict == "partly holds (1 of 2)"
    # reversed
    _table1(tmp_path, nrf=[0.30, 0.31, 0.29, 0.30], linear=[0.40, 0.42, 0.38, 0.41], fwrf=[0.40, 0.42, 0.38, 0.41])
    assert C._baselines(tmp_path).verdict == C.REVERSED


def test_low_data_and_transfer_over_targets(tmp_path):
    _adaptation(tmp_path, scratch=[0.20, 0.22, 0.21, 0.19], linear=[0.10, 0.12, 0.09, 0.11],
                ensemble=[0.19, 0.23, 0.20, 0.20])
    rows = C.claim_rows(PAPER, tmp_path)
    by = _by(rows)
    assert by["low_data"] == C.HOLDS
    assert by["transfer"] == C.UNDECIDED  # ensemble − scratch averages 0 across targets
    why = rows.set_index("claim").at["transfer", "run_reason"]
    assert "within ±" in why and "more draws" in why
    _adaptation(tmp_path, scratch=[0.10, 0.12, 0.09, 0.11], linear=[0.20, 0.22, 0.21, 0.19], ensemble=0.3)
    by = _by(C.claim_rows(PAPER, tmp_path))
    assert by["low_data"] == C.REVERSED and by["transfer"] == C.HOLDS


def test_low_data_falls_back_to_fig2a(tmp_path):
    _write(tmp_path, "figures/fig2a.csv", [
        {"method": C.SCRATCH, "n_train": "20", "mean": 0.30, "sem": 0.01, "n_subjects": 4},
        {"method": C.LINEAR, "n_train": "20", "mean": 0.20, "sem": 0.01, "n_subjects": 4},
        {"method": C.SCRATCH, "n_train": "full", "mean": 0.50, "sem": 0.01, "n_subjects": 4},
    ])
    f = C._low_data(tmp_path)
    assert f.verdict == C.HOLDS and "fig2a" in f.note


def test_ensemble_average_table3(tmp_path):
    rows = [{"target": "subj07", "train_images": "200", "method": m, "n_draws": 3, "pearson_mean": v,
             "pearson_sem": 0.005} for m, v in ((C.ENSEMBLE, 0.30), (C.AVERAGE, 0.25))]
    _write(tmp_path, "tables/table3.csv", rows)
    f = C._ensemble_average(tmp_path)
    assert f.verdict == C.REVERSED  # the paper: average above ensemble
    assert "average − ensemble" in C.reason(C.claims()[3], f)


def test_fig4_shuffle_and_shift(tmp_path):
    rows = []
    for n, shuffled in ((20, 0.05), (200, 0.10)):  # the drop sharper at low N, as the paper's
        rows += [{"panel": "a", "condition": C.INTACT, "n_train": n, "pearson_mean": 0.30, "pearson_sem": 0.01,
                  "n_draws": 3},
                 {"panel": "a", "condition": C.GLOBAL, "n_train": n, "pearson_mean": shuffled, "pearson_sem": 0.01,
                  "n_draws": 3},
                 {"panel": "a", "condition": C.WITHIN_ROI, "n_train": n, "pearson_mean": 0.25, "pearson_sem": 0.01,
                  "n_draws": 3}]
        for roi in ("EBA", "V1"):
            rows += [{"panel": roi, "condition": C.ALIGNED, "n_train": n, "pearson_mean": 0.20, "pearson_sem": 0.02,
                      "n_draws": 3},
                     {"panel": roi, "condition": C.SHIFTED, "n_train": n, "pearson_mean": 0.19, "pearson_sem": 0.02,
                      "n_draws": 3}]
    _write(tmp_path, "figures/fig4.csv", rows)
    by = _by(C.claim_rows(PAPER, tmp_path))
    assert by["shuffle"] == C.HOLDS
    low_n = C._fig4(tmp_path, True).comparisons[-1]
    assert low_n.label == "drop at N = 20 − drop at N = 200 (global shuffle)"
    assert low_n.diff == pytest.approx(0.05) and low_n.sem == pytest.approx(0.02)
    assert by["mni_shift"] == C.UNDECIDED
    # the drop largest at the largest N (this project's default run): intact still beats both shuffles,
    # but the low-N part of the claim points the other way
    for row in rows:
        if row["panel"] == "a" and row["condition"] == C.GLOBAL:
            row["pearson_mean"] = 0.20 if row["n_train"] == 20 else 0.05
    _write(tmp_path, "figures/fig4.csv", rows)
    f = C._fig4(tmp_path, True)
    assert f.verdict == C.MIXED and f.comparisons[-1].verdict == C.REVERSED
    assert "drop at N = 20 − drop at N = 200 (global shuffle) point the other way" in C.reason(C.claims()[4], f)
    f = C._fig4(tmp_path, False)
    assert "equal within ±2 SEM" in f.note and "EBA at N = 20: [-0.047, +0.067]" in f.note


def test_architecture_without_spread_and_strategy(tmp_path):
    _write(tmp_path, "tables/table5.csv", [
        {"method": f"NRF depth {d}", "depth": d, "n_draws": 1, "pearson_mean": v, "pearson_sem": np.nan,
         "improving_at_cap": d == 16} for d, v in ((2, 0.30), (4, 0.32), (8, 0.31))])
    f = C._architecture(tmp_path, "table5", "depth", 8)
    assert f.verdict == C.NO_SPREAD
    assert [c.label for c in f.comparisons] == ["depth 4 − depth 2", "depth 4 − depth 8"]  # rank-matched to 8
    assert "no spread" in C.reason(C.claims()[6], f)
    _write(tmp_path, "tables/table4.csv", [
        {"method": m, "n_train": 800, "n_draws": 3, "pearson_mean": v, "pearson_sem": 0.005}
        for m, v in (("finetune both", 0.30), ("finetune image block only", 0.10), ("finetune MLP only", 0.29))])
    f = C._strategy(tmp_path)
    assert [c.verdict for c in f.comparisons] == [C.HOLDS, C.HOLDS]
    _write(tmp_path, "tables/table4.csv", [
        {"method": m, "n_train": 800, "n_draws": 3, "pearson_mean": v, "pearson_sem": 0.005}
        for m, v in (("finetune both", 0.30), ("finetune image block only", 0.10), ("finetune MLP only", 0.20))])
    f = C._strategy(tmp_path)
    assert f.verdict == C.MIXED and "differ by" in C.reason(C.claims()[8], f)


def test_resolution_and_continuous(tmp_path):
    _write(tmp_path, "tables/table_resolution.csv", [
        {"subject": "subj01", "model": m, "method": k, "r_mean": v, "r_sem": 0.002}
        for m, k, v in (("Linear", "nearest", 0.65), ("Linear", "trilinear", 0.73), ("NRF", "queried", 0.86),
                        ("NRF", "nearest", 0.80), ("NRF", "trilinear", 0.861))])
    assert C._resolution(tmp_path).verdict == C.HOLDS
    rows = []
    for seed, gap in ((0, 0.01), (1, 0.012), (2, 0.008)):
        for field, scale in (("smooth", np.nan), ("fine 3 mm", 3.0), ("fine 2 mm", 2.0)):
            rows.append({"seed": seed, "field": field, "fine_scale_mm": scale,
                         "method": "NRF queried (pooled subjects)",
                         "gap_vs_trilinear": gap if scale == 2.0 else -0.5, "gap_sem": 0.001})
    _write(tmp_path, "tables/continuous_space.csv", rows)
    f = C._continuous(tmp_path)
    assert f.verdict == C.HOLDS and "fine 2 mm" in f.comparisons[0].label  # the finest field is read
    # no gain at 2 mm from an NRF whose code's shortest wavelength is 53 mm: the code, not the draws, limits it
    for row in rows:
        row.update(gap_vs_trilinear=0.0001 * (row["seed"] - 1), code_wavelength_min_mm=53.2,
                   code_wavelength_median_mm=97.5)
    _write(tmp_path, "tables/continuous_space.csv", rows)
    f = C._continuous(tmp_path)
    sentence = C.reason(None, f)
    assert f.verdict == C.UNDECIDED and "more draws or subjects would decide" not in sentence
    assert "wavelengths of 53 mm and longer (median 98 mm), far above the field's 2 mm structure" in sentence
    # a code fine enough for the structure: the usual sentence
    for row in rows:
        row.update(code_wavelength_min_mm=3.0)
    _write(tmp_path, "tables/continuous_space.csv", rows)
    assert "more draws or subjects would decide them" in C.reason(None, C._continuous(tmp_path))


def test_code_wavelengths():
    import torch  # noqa: F401 (nrf.models)

    from nrf.models.nrf import code_wavelengths_mm

    w8, w64 = code_wavelengths_mm(32, 8.0, 0), code_wavelengths_mm(32, 64.0, 0)
    assert w8.shape == (32,) and np.allclose(w8, 8 * w64)  # the same B, scaled
    # one feature along x alone: 2π × 182 mm / b
    from nrf.models.nrf import FourierFeatures

    b = FourierFeatures(32, 8.0, 0).B.double().numpy()
    assert w8[0] == pytest.approx(2 * np.pi / np.linalg.norm(b[:, 0] / np.array([182.0, 218.0, 182.0])))


def test_unreadable_table_stops_the_page_and_a_missing_one_is_not_run(tmp_path):
    assert C._baselines(tmp_path).verdict == C.NOT_RUN
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "table1.csv").write_text("")  # it was written, then lost its contents
    with pytest.raises(CorruptFileError, match=r"table1\.csv.*checksum line"):
        C._baselines(tmp_path)


@pytest.mark.parametrize("how", ["zeros", "truncated"])
def test_a_damaged_table_stops_the_page_naming_it(tmp_path, how):
    """A table written whole, then damaged (zeros in its middle, or cut short), is never read as numbers."""
    run = tmp_path / "run"
    _table1(run, nrf=[0.40, 0.42, 0.38, 0.41], linear=[0.30, 0.33, 0.29, 0.31], fwrf=[0.31, 0.30, 0.29, 0.30])
    path = run / "tables" / "table1.csv"
    raw = path.read_bytes()
    mid = len(raw) // 2
    path.write_bytes(raw[:mid] + bytes(32) + raw[mid + 32:] if how == "zeros" else raw[:mid])
    out = {k: tmp_path / f"claims.{k}" for k in ("csv", "md", "html")}
    with pytest.raises(CorruptFileError, match=rf"{path}: this table CSV is corrupt"):
        C.write_claims(paper_csv=PAPER, run_results=run, out_csv=out["csv"], out_md=out["md"], out_html=out["html"])
    assert not any(f.exists() for f in out.values())


def test_write_claims_two_runs(tmp_path):
    run, other = tmp_path / "run", tmp_path / "claims"
    _table1(run, nrf=[0.40, 0.42, 0.38, 0.41], linear=[0.30, 0.33, 0.29, 0.31], fwrf=[0.31, 0.30, 0.29, 0.30])
    _table1(other, nrf=[0.30, 0.31, 0.29, 0.30], linear=[0.40, 0.42, 0.38, 0.41], fwrf=[0.40, 0.42, 0.38, 0.41])
    out = {k: tmp_path / f"claims.{k}" for k in ("csv", "md", "html")}
    rows = C.write_claims(paper_csv=PAPER, run_results=run, claims_results=other, out_csv=out["csv"],
                          out_md=out["md"], out_html=out["html"])
    assert _by(rows)["baselines"] == C.HOLDS and _by(rows, "claims_verdict")["baselines"] == C.REVERSED
    md = out["md"].read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].startswith("| Claim ") and "Claims run" in table[0] and len(table) == len(C.claims()) + 2
    assert "<table" in out["html"].read_text()
    back = read_frame(out["csv"], "table")
    assert list(back["claim"]) == [c.key for c in C.claims()]


@pytest.mark.parametrize("missing", [None, "x"])
def test_no_claims_run_column_without_folder(tmp_path, missing):
    out = {k: tmp_path / f"c.{k}" for k in ("csv", "md", "html")}
    C.write_claims(paper_csv=PAPER, run_results=tmp_path,
                   claims_results=None if missing is None else tmp_path / missing,
                   out_csv=out["csv"], out_md=out["md"], out_html=out["html"])
    assert ("Claims run" in out["md"].read_text()) == (missing is not None)
