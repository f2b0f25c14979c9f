"""Paper tables: this run's numbers beside the paper's, as CSV and Markdown.

Voxel-level cells follow the paper: per subject, the median over voxels of
the per-voxel Pearson r (and of the per-voxel MSE) on the test images; across
subjects, mean ± SEM.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.atomic import atomic_output

VOXEL_METRICS = ("pearson", "mse")


def paper_values(paper_csv, table: str) -> pd.DataFrame:
    """The paper's reported numbers of one table: rows method, columns metric."""
    rows = pd.read_csv(paper_csv)
    rows = rows[rows["table"] == table]
    return rows.pivot_table(index="method", columns="metric", values="value", aggfunc="first")


def subject_summary(score_csv) -> dict[str, float]:
    """Median over voxels of each voxel-level metric in one subject's scores."""
    scores = pd.read_csv(score_csv)
    return {m: float(np.nanmedian(scores[m].to_numpy())) for m in VOXEL_METRICS}


def mean_sem(values) -> tuple[float, float]:
    """Mean and standard error of the mean (ddof=1; nan SEM for one value)."""
    values = np.asarray(values, dtype=np.float64)
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
    return float(values.mean()), float(sem)


def voxel_level_table(score_csvs: dict[str, list], subjects: list[str], paper: pd.DataFrame) -> pd.DataFrame:
    """One row per method: per-subject medians, mean ± SEM, and the paper's value.

    ``score_csvs`` maps a method name (as the paper spells it) to its
    per-subject score CSVs, in the order of ``subjects``.
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
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float, sem: float) -> str:
    return f"{mean:.3f}" if np.isnan(sem) else f"{mean:.3f} ± {sem:.3f}"


def to_markdown(table: pd.DataFrame, *, title: str, note: str) -> str:
    shown = pd.DataFrame(
        {
            "Method": table["method"],
            "Pearson ↑ (this run)": [_cell(m, s) for m, s in zip(table["pearson_mean"], table["pearson_sem"])],
            "Pearson (paper)": table["pearson_paper"].map(lambda v: "n/a" if np.isnan(v) else f"{v:.3f}"),
            "MSE ↓ (this run)": [_cell(m, s) for m, s in zip(table["mse_mean"], table["mse_sem"])],
            "MSE (paper)": table["mse_paper"].map(lambda v: "n/a" if np.isnan(v) else f"{v:.3f}"),
        }
    )
    return f"# {title}\n\n{shown.to_markdown(index=False)}\n\n{note}\n"


def _write_atomic(path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_table1(score_csvs, *, paper_csv, subjects, protocol, dataset, out_csv, out_md) -> pd.DataFrame:
    """Table 1, voxel level: median Pearson r and MSE, mean ± SEM over subjects."""
    table = voxel_level_table(score_csvs, subjects, paper_values(paper_csv, "table1"))
    table.insert(1, "protocol", protocol)
    table.insert(2, "dataset", dataset)
    _write_atomic(out_csv, table.to_csv(index=False, float_format="%.6g"))
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}** (paper = the authors' choices, "
        "clean = validation split of training images). Cells: per subject, the median over voxels "
        f"of the test-image Pearson r and MSE; mean ± SEM over subjects ({', '.join(subjects)}). "
        "The paper column is the NRF paper's Table 1 (real NSD, CLIP ViT-B/16, full training set)"
        + ("; a simulated run is not expected to match its values." if dataset != "nsd" else ".")
    )
    _write_atomic(out_md, to_markdown(table, title="Table 1 — voxel-level encoding accuracy", note=note))
    return table
