"""Paper tables: this run's numbers beside the paper's, as CSV and Markdown.

Voxel-level cells follow the paper: per subject, the median over voxels of
the per-voxel Pearson r (and of the per-voxel MSE) on the test images; across
subjects, mean ± SEM.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.frames import read_frame, write_frame
from nrf.reporting.encoders import median_normalised, retrieval_of, roi_medians
from nrf.reporting.format import (  # noqa: F401
    _cell,
    _paper,
    _write_atomic,
    mean_sem,
    to_html,
    to_markdown,
)
from nrf.reporting.semantic import (
    semantic_columns,
    semantic_markdown_columns,
    semantic_note,
)

VOXEL_METRICS = ("pearson", "mse")


def paper_values(paper_csv, table: str) -> pd.DataFrame:
    """The paper's reported numbers of one table: rows method, columns metric."""
    rows = read_frame(paper_csv, "paper")
    rows = rows[rows["table"] == table]
    return rows.pivot_table(index="method", columns="metric", values="value", aggfunc="first")


def subject_summary(score_csv) -> dict[str, float]:
    """Median over voxels of each voxel-level metric in one subject's scores.

    An undefined r (a constant prediction) counts as 0, as in
    nrf.metrics.summarise; a missing MSE means a corrupt scores file and stops.
    """
    scores = read_frame(score_csv, "scores")  # checked: mse finite, pearson NaN only where undefined
    mse = scores["mse"].to_numpy(dtype=np.float64)
    pearson = np.nan_to_num(scores["pearson"].to_numpy(dtype=np.float64), nan=0.0)
    return {"pearson": float(np.median(pearson)), "mse": float(np.median(mse))}


def voxel_level_table(score_csvs: dict[str, list], subjects: list[str], paper: pd.DataFrame, *,
                      voxel_csvs: list | None = None, retrieval_csvs: dict[str, list] | None = None,
                      quoted: tuple = ()) -> pd.DataFrame:
    """One row per method: per-subject medians, mean ± SEM, and the paper's value.

    ``score_csvs`` maps a method name (as the paper spells it) to its
    per-subject score CSVs, in the order of ``subjects``. With ``voxel_csvs``
    (the subjects' voxel tables, nrf.experiments.voxels) the median
    noise-ceiling-normalised accuracy is added (``nc_*``, percent); with
    ``retrieval_csvs`` (method -> per-subject retrieval CSVs) top-1/top-5
    retrieval (``top1_*``, ``top5_*``, fractions). ``quoted`` methods are the
    paper's rows only (``quoted`` = True, this run's cells empty).
    """

    rows = []
    for method, paths in score_csvs.items():
        if len(paths) != len(subjects):
            raise ValueError(f"{method}: {len(paths)} score files for {len(subjects)} subjects")
        per_subject = [subject_summary(p) for p in paths]
        row = {"method": method, "n_subjects": len(subjects)}
        for metric in VOXEL_METRICS:
            values = [s[metric] for s in per_subject]
            row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_sem(values)
            row[f"{metric}_paper"] = paper.at[method, metric] if method in paper.index else np.nan
            row.update({f"{metric}_{subj}": v for subj, v in zip(subjects, values)})
        if voxel_csvs is not None:
            values = [median_normalised(p, v) for p, v in zip(paths, voxel_csvs, strict=True)]
            row["nc_mean"], row["nc_sem"] = mean_sem(values)
            row.update({f"nc_{subj}": v for subj, v in zip(subjects, values)})
        if retrieval_csvs is not None and method in retrieval_csvs:
            found = [retrieval_of(p) for p in retrieval_csvs[method]]
            for key in ("top1", "top5"):
                row[f"{key}_mean"], row[f"{key}_sem"] = mean_sem([f[key] for f in found])
            row["top1_chance"] = found[0]["chance_top1"]
        row["quoted"] = False
        rows.append(row)
    for method in quoted:
        if method not in paper.index:
            raise ValueError(f"{method!r} is to be quoted but the paper table has no such row")
        row = {"method": method, "n_subjects": 0, "quoted": True}
        for metric in VOXEL_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_sem"] = np.nan, np.nan
            row[f"{metric}_paper"] = paper.at[method, metric]
        rows.append(row)
    return pd.DataFrame(rows)


def _column(table: pd.DataFrame, key: str, scale: float = 1.0, digits: int = 3) -> list[str]:
    quoted = table["quoted"] if "quoted" in table else pd.Series(False, index=table.index)
    return [
        "quoted" if q else _cell(m * scale, s * scale, digits)
        for m, s, q in zip(table[f"{key}_mean"], table[f"{key}_sem"], quoted)
    ]


def shown_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader sees: this run's mean ± SEM beside the paper's value
    (and, where computed, noise-ceiling-normalised accuracy and retrieval)."""
    method = table["method"]
    if "quoted" in table:
        method = [f"{m} (quoted from the paper)" if q else m for m, q in zip(table["method"], table["quoted"])]
    shown = pd.DataFrame(
        {
            "Method": method,
            "Pearson ↑ (this run)": _column(table, "pearson"),
            "Pearson (paper)": table["pearson_paper"].map(_paper),
            "MSE ↓ (this run)": _column(table, "mse"),
            "MSE (paper)": table["mse_paper"].map(_paper),
        }
    )
    if "improving_at_cap" in table:
        shown["Steps (best at)"] = [f"{n} ({b}){' still rising' if up else ''}" for n, b, up in
                                    zip(table["steps"], table["best_step"], table["improving_at_cap"])]
    if "nc_mean" in table:
        shown["% of noise ceiling ↑ (this run)"] = _column(table, "nc", digits=1)
    if "top1_mean" in table:
        shown["Top-1 % ↑ (this run)"] = _column(table, "top1", 100.0, 1)
        shown["Top-5 % ↑ (this run)"] = _column(table, "top5", 100.0, 1)
    return shown


def test_images_note(dataset: str, test_images: str) -> str:
    """How the test-image rule applied to this run's data."""
    if test_images == "seen_by_subject":
        return "Test images: every shared image each subject saw (1,000 on NSD; the authors score 907)."
    if dataset == "nsd":
        return ("Test images: the authors' rule, the 907 shared images shown within the first 30 sessions "
                "(seen by every NSD subject).")
    return ("Test images: the authors' rule (shared images shown within the sessions every subject "
            "completed); every simulated subject has the same sessions, so this is every shared image.")


def with_semantic(table: pd.DataFrame, semantic_csvs: dict | None, subjects, paper: pd.DataFrame):
    """``table`` joined with the eight semantic-level columns (nrf.reporting.semantic),
    the "Measured fMRI" reference row first; (table, display columns, note)."""
    shown = shown_columns(table)
    if not semantic_csvs:
        return table, shown, ""

    sem = semantic_columns(semantic_csvs, subjects, paper)
    # the reference rows decoded only (Measured fMRI) first, then the voxel table's order
    order = [m for m in semantic_csvs if m not in set(table["method"])] + list(table["method"])
    table = sem.merge(table, on="method", how="outer", suffixes=("", "_voxel"))
    table = table.set_index("method").loc[order].reset_index()
    if "quoted" in table:
        table["quoted"] = table["quoted"].fillna(False).astype(bool)
    shown = shown_columns(table).join(semantic_markdown_columns(table).reset_index(drop=True))
    return table, shown, semantic_note(semantic_csvs)


def write_table1(score_csvs, *, paper_csv, subjects, protocol, dataset, test_images, out_csv, out_md, out_html,
                 semantic_csvs: dict | None = None, voxel_csvs=None, retrieval_csvs=None, quoted=(),
                 out_roi_csv=None) -> pd.DataFrame:
    """Table 1: median Pearson r and MSE (voxel level), mean ± SEM over subjects.

    Optional: ``semantic_csvs`` ({method: per-subject decoding metric CSVs},
    "Measured fMRI" included) adds the eight semantic-level columns;
    ``voxel_csvs`` the noise-ceiling-normalised column, ``retrieval_csvs``
    top-1/top-5 retrieval, ``quoted`` the paper's rows of methods not rerun,
    and ``out_roi_csv`` (with ``voxel_csvs``) the per-ROI companion CSV
    (nrf.reporting.encoders.roi_medians).
    """
    paper = paper_values(paper_csv, "table1")
    table = voxel_level_table(score_csvs, subjects, paper, voxel_csvs=voxel_csvs,
                              retrieval_csvs=retrieval_csvs, quoted=tuple(quoted))
    table, shown, semantic = with_semantic(table, semantic_csvs, subjects, paper)
    table.insert(1, "protocol", protocol)
    table.insert(2, "dataset", dataset)
    write_frame(table, out_csv, "table")
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}** (paper = the authors' choices, "
        "clean = validation split of training images). Cells: per subject, the median over voxels "
        f"of the test-image Pearson r and MSE; mean ± SEM over subjects ({', '.join(subjects)}). "
        + test_images_note(dataset, test_images)
        + " The paper column is the NRF paper's Table 1 (real NSD, CLIP ViT-B/16, full training set)"
        + ("; a simulated run is not expected to match its values." if dataset != "nsd" else ".")
    )
    if voxel_csvs is not None:
        note += (" % of noise ceiling: per subject, the median over voxels of 100·r|r|/NC (NC: "
                 + ("NSD's ceiling from ncsnr for 3 averaged repeats" if dataset == "nsd"
                    else "the exact ceiling from the simulator's noiseless responses")
                 + "), mean ± SEM over subjects.")
    if retrieval_csvs is not None:
        note += (" Top-1/Top-5: each measured test response retrieves its image among all test images by "
                 "correlation with the predicted responses (chance 1/n and 5/n).")
    if quoted:
        note += " Rows marked quoted are the paper's numbers, not rerun here."
    if out_roi_csv is not None:
        if voxel_csvs is None:
            raise ValueError("the per-ROI table needs voxel_csvs")

        rois = roi_medians(score_csvs, voxel_csvs, subjects)
        write_frame(rois, out_roi_csv, "table")
    if semantic:
        note += "\n\n" + semantic
    title = "Table 1 — encoding accuracy, voxel and semantic level"
    _write_atomic(out_md, to_markdown(shown, title=title, note=note))
    _write_atomic(out_html, to_html(shown, title=title, note=note))
    return table
