"""The eight semantic-level columns of any paper table, from the decoding metric CSVs.

Each (source, subject) has a metrics CSV (nrf.decoding.scoring: metric,
value, note, backend, source, subject). Per method the columns are the mean
± SEM over subjects of each metric, the paper's value beside it, and the
backend that decoded. A metric whose network was unavailable is NaN in the
CSV and "n/a" in the Markdown, with the reason collected for the table's note.

Usage in a table writer::

    sem = semantic_columns({"Measured fMRI": csvs_measured, "NRF": csvs_nrf}, subjects, paper)
    table = voxel_table.merge(sem, on="method", how="outer")
    shown = shown.join(semantic_markdown_columns(sem))   # same row order
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.decoding.image_metrics import LOWER_IS_BETTER, METRIC_TITLES, METRICS
from nrf.frames import read_frame
from nrf.reporting.format import mean_sem

#: The paper's column titles with the direction of "better".
COLUMN_TITLES = {m: f"{METRIC_TITLES[m]} {'↓' if m in LOWER_IS_BETTER else '↑'}" for m in METRICS}
#: Extra metrics a backend may add (nrf.decoding.scoring), never in the paper.
EXTRA_TITLES = {"feature_2way": "2-way ID in the decoder's feature space ↑ (not a paper column)"}


def read_metrics(csv) -> pd.Series:
    """metric -> value of one (source, subject) CSV (the eight paper metrics and any extras).

    Raises naming the file if a paper metric is absent.
    """
    table = read_frame(csv, "decoding_metrics")
    missing = [m for m in METRICS if m not in set(table["metric"])]
    if missing:
        raise ValueError(f"{csv}: metrics {missing} missing; expected one row per metric of {METRICS}")
    return table.set_index("metric")["value"].astype(float)


def _notes(csv) -> dict[str, str]:
    table = read_frame(csv, "decoding_metrics")
    return dict(zip(table["metric"], table["note"].fillna("")))


def _backend(csv) -> str:
    return str(read_frame(csv, "decoding_metrics")["backend"].iloc[0])


def semantic_columns(
    metric_csvs: dict[str, list], subjects: list[str], paper: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per method: backend, and per metric {m}_mean, {m}_sem, {m}_paper, {m}_{subject}.

    metric_csvs : method (as the paper spells it) -> per-subject CSVs in ``subjects`` order
    paper       : rows method, columns metric (nrf.reporting.tables.paper_values), or None
    A metric that is n/a for any subject is NaN (n/a) for the method.
    """
    rows = []
    for method, paths in metric_csvs.items():
        if len(paths) != len(subjects):
            raise ValueError(f"{method}: {len(paths)} metric files for {len(subjects)} subjects")
        per_subject = [read_metrics(p) for p in paths]
        backends = sorted({_backend(p) for p in paths})
        row = {"method": method, "decoding_backend": ",".join(backends)}
        for metric in METRICS:
            values = np.array([s[metric] for s in per_subject])
            if np.isnan(values).any():
                row[f"{metric}_mean"], row[f"{metric}_sem"] = np.nan, np.nan
            else:
                row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_sem(values)
            has_paper = paper is not None and method in paper.index and metric in paper.columns
            row[f"{metric}_paper"] = float(paper.at[method, metric]) if has_paper else np.nan
            row.update({f"{metric}_{subj}": v for subj, v in zip(subjects, values)})
        for extra in EXTRA_TITLES:
            if all(extra in s.index for s in per_subject):
                row[f"{extra}_mean"], row[f"{extra}_sem"] = mean_sem([s[extra] for s in per_subject])
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float, sem: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if np.isnan(sem) else f"{mean:.3f} ± {sem:.3f}"


def semantic_markdown_columns(table: pd.DataFrame, *, with_paper: bool = True) -> pd.DataFrame:
    """Display strings of the eight columns (this run, then the paper's), one row per method of ``table``."""
    shown = {}
    for metric in METRICS:
        title = COLUMN_TITLES[metric]
        shown[f"{title} (this run)"] = [_cell(m, s) for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_sem"])]
        if with_paper:
            shown[f"{METRIC_TITLES[metric]} (paper)"] = table[f"{metric}_paper"].map(
                lambda v: "n/a" if np.isnan(v) else f"{v:.3f}"
            ).tolist()
    for extra, title in EXTRA_TITLES.items():
        if f"{extra}_mean" in table:
            shown[title] = [_cell(m, s) for m, s in zip(table[f"{extra}_mean"], table[f"{extra}_sem"])]
    return pd.DataFrame(shown, index=table.index)


def unavailable_notes(metric_csvs: dict[str, list]) -> list[str]:
    """Why each n/a metric is n/a (one line per metric and reason), for a table's note."""
    reasons: dict[tuple[str, str], None] = {}
    for paths in metric_csvs.values():
        for path in paths:
            values, notes = read_metrics(path), _notes(path)
            for metric in METRICS:
                if np.isnan(values[metric]):
                    reasons[(metric, notes.get(metric, ""))] = None
    return [f"{METRIC_TITLES[m]}: {note}" for m, note in reasons]


def semantic_note(metric_csvs: dict[str, list]) -> str:
    """A table note: which backend decoded, and why any column says n/a."""
    backends = sorted({_backend(p) for paths in metric_csvs.values() for p in paths})
    lines = [f"Semantic-level columns: reconstructions by the {', '.join(backends)} decoding backend, scored "
             "with MindEye2's evaluation metrics (nrf.decoding.image_metrics); mean ± SEM over subjects."]
    if "offline" in backends:
        lines.append("The offline backend is a ridge decoder trained on each subject's measured training "
                     "responses, a stand-in for MindEye2: its numbers are not comparable to the paper's.")
    lines += [f"n/a — {line}" for line in unavailable_notes(metric_csvs)]
    return "\n".join(lines)
