"""Tables 4–6 (ablations): this run's numbers beside the paper's.

Table 4 (finetune strategy): per draw, the median voxel r and MSE of the
target's test images; mean ± SEM over draws. Tables 5 and 6 (MLP depth and
hidden width): one full-data training per row (no draws, so no SEM), scored
like Table 1 (median over voxels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nrf.checks import corrupt_file
from nrf.frames import read_frame
from nrf.reporting.tables import (
    VOXEL_METRICS,
    _write_atomic,
    mean_sem,
    paper_values,
    shown_columns,
    subject_summary,
    test_images_note,
    to_html,
    to_markdown,
)


def _with_paper(rows: list[dict], paper: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    for metric in VOXEL_METRICS:
        table[f"{metric}_paper"] = [
            paper.at[m, metric] if m in paper.index and metric in paper.columns else np.nan for m in table["method"]
        ]
    return table


def _best(table: pd.DataFrame) -> str:
    i = int(np.argmax(table["pearson_mean"].to_numpy()))
    spread = table["pearson_mean"].max() - table["pearson_mean"].min()
    return (f"**{table['method'].iloc[i]}** has the highest median r ({table['pearson_mean'].iloc[i]:.3f}); "
            f"the rows span {spread:.3f} in r.")


def _write(table: pd.DataFrame, *, title: str, note: str, out_csv, out_md, out_html) -> None:
    _write_atomic(out_csv, table.to_csv(index=False, float_format="%.6g"))
    _write_atomic(out_md, to_markdown(shown_columns(table), title=title, note=note))
    _write_atomic(out_html, to_html(shown_columns(table), title=title, note=note))


def strategy_table(rows: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy (in the paper's order): mean ± SEM over draws of pearson and mse."""
    out = []
    for method, part in rows.groupby("method", sort=False):
        row = {"method": method, "n_train": int(part["n_train"].iloc[0]), "n_draws": len(part),
               "steps_mean": float(part["steps"].mean())}
        for metric in VOXEL_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_sem(part[metric])
        out.append(row)
    return _with_paper(out, paper)


def write_table4(rows_csv, *, paper_csv, base: str, target: str, protocol: str, dataset: str, test_images: str,
                 finetune_steps: int, out_csv, out_md, out_html) -> pd.DataFrame:
    """Table 4: finetune every parameter, the image block only, or the MLP only."""
    rows = read_frame(rows_csv, "finetune_strategies")
    table = strategy_table(rows, paper_values(paper_csv, "table4"))
    table.insert(1, "protocol", protocol)
    table.insert(2, "dataset", dataset)
    by = dict(zip(table["method"], table["pearson_mean"]))
    n, draws = int(table["n_train"].iloc[0]), int(table["n_draws"].max())
    found = _best(table)
    if {"finetune both", "finetune image block only", "finetune MLP only"} <= set(by):
        found += (f" MLP only − both: {by['finetune MLP only'] - by['finetune both']:+.3f}; "
                  f"image block only − both: {by['finetune image block only'] - by['finetune both']:+.3f} "
                  "(the paper: -0.001 and -0.130).")
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}**. {base}'s full-data NRF finetuned on {target}'s "
        f"N = {n} training images at {target}'s MNI coordinates, updating every parameter, only the image block "
        f"(token mergers) or only the predictor MLP; "
        + ("validated on the test images every epoch, patience 5, " if protocol == "paper" else "")
        + f"at most {finetune_steps} steps. Cells: median over voxels of the test Pearson r and MSE, mean ± SEM "
        f"over {draws} draws of the training images. " + test_images_note(dataset, test_images)
        + f" This run: {found}"
        + (" The paper column is real NSD with CLIP ViT-B/16; a simulated run is not expected to match it."
           if dataset != "nsd" else "")
    )
    _write(table, title=f"Table 4 — finetune strategy ({base} → {target}, N = {n})", note=note,
           out_csv=out_csv, out_md=out_md, out_html=out_html)
    return table


def architecture_table(score_csvs: dict[str, str], paper: pd.DataFrame, paper_rows=None) -> pd.DataFrame:
    """One row per method label (e.g. "NRF depth 8"): the median voxel r and MSE of its one training.

    paper_rows : the paper's label to set beside each row (default: its own label)
    """
    rows = []
    for method, path in score_csvs.items():
        s = subject_summary(path)
        rows.append({"method": method, "n_draws": 1, "pearson_mean": s["pearson"], "pearson_sem": np.nan,
                     "mse_mean": s["mse"], "mse_sem": np.nan})
    table = _with_paper([dict(r, method=p) for r, p in zip(rows, paper_rows or score_csvs)], paper)
    table.insert(1, "paper_row", table["method"])
    table["method"] = list(score_csvs)
    return table


def paper_rows_for(axis: str, values, paper: pd.DataFrame) -> tuple[list[str], str]:
    """The paper's rows to set beside ours, and a sentence saying how they were matched.

    Our values that the paper reports are matched by label; a scaled-down set
    of as many values as the paper's is matched by rank (smallest to smallest).
    """
    labels = [f"NRF {axis} {v}" for v in values]
    if all(label in paper.index for label in labels):
        return labels, f"The paper's {axis}s, matched by label."
    theirs = sorted((m for m in paper.index if m.startswith(f"NRF {axis} ")), key=lambda m: int(m.split()[-1]))
    if len(theirs) == len(labels):
        order = np.argsort(values)
        matched = [""] * len(labels)
        for rank, i in enumerate(order):
            matched[i] = theirs[rank]
        paper_set = ", ".join(m.split()[-1] for m in theirs)
        return matched, (f"{axis.capitalize()}s scaled down from the paper's {paper_set} to "
                         f"{', '.join(map(str, values))} to fit a CPU run; each row's paper column is the "
                         f"paper's row of the same rank.")
    return labels, f"The paper reports {axis}s {', '.join(m.split()[-1] for m in theirs)}; rows it lacks show n/a."


def _training_summary(path) -> dict:
    """A training summary JSON (nrf.experiments.ablations.training_summary); a garbled one is named."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt_file(path, "training summary", f"{type(error).__name__}: {error}") from error


def _cap_note(table: pd.DataFrame, max_steps: int) -> str:
    """Which rows the step cap ended while their validation r was still rising."""
    rising = table.loc[table["improving_at_cap"], "method"].tolist()
    if not rising:
        return "Every row stopped early or peaked before the step cap."
    return (f"Still improving when the {max_steps}-step cap ended training: {', '.join(rising)} (best validation r "
            f"at the last evaluation), so these rows show how fast each size learns within the cap, not what it "
            f"can reach.")


def write_architecture_table(name: str, axis: str, values, score_csvs, *, paper_csv, subject: str, protocol: str,
                             dataset: str, test_images: str, fixed: dict, max_steps: int,
                             out_csv, out_md, out_html, trainings=None) -> pd.DataFrame:
    """Table 5 (axis "depth") or Table 6 (axis "width"): one NRF per value on the full training set.

    score_csvs : per-voxel score CSVs in the order of ``values``
    trainings  : the trainings' summaries (JSON, nrf.experiments.ablations.training_summary) in the same order;
                 they add steps, the best step and whether the cap cut a still-improving run short
    fixed      : the other sizes, e.g. {"width": 128}
    """
    if len(score_csvs) != len(values) or (trainings is not None and len(trainings) != len(values)):
        raise ValueError(f"{name}: {len(score_csvs)} score files and {len(trainings or [])} training summaries "
                         f"for {len(values)} {axis}s")
    paper = paper_values(paper_csv, name)
    matched, how = paper_rows_for(axis, values, paper)
    labels = [f"NRF {axis} {v}" for v in values]
    table = architecture_table(dict(zip(labels, score_csvs)), paper, matched)
    table.insert(1, axis, list(values))
    table.insert(2, "protocol", protocol)
    table.insert(3, "dataset", dataset)
    if trainings is not None:
        summaries = [_training_summary(t) for t in trainings]
        table["steps"] = [s["steps"] for s in summaries]
        table["best_step"] = [s["best_step"] for s in summaries]
        table["improving_at_cap"] = [bool(s["improving_at_cap"]) for s in summaries]
    other = ", ".join(f"{k} {v}" for k, v in fixed.items())
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}**. One NRF per row ({other}) trained on {subject}'s "
        f"full training set with the pipeline's schedule (at most {max_steps} steps"
        + (", early stopping on the test images as the authors do" if protocol == "paper" else "")
        + "). Cells: median over voxels of the test Pearson r and MSE (one training per row, so no SEM). "
        + how + " " + test_images_note(dataset, test_images) + f" This run: {_best(table)}"
        + (" " + _cap_note(table, max_steps) if trainings is not None else "")
        + (" The paper column is real NSD with CLIP ViT-B/16; a simulated run is not expected to match it."
           if dataset != "nsd" else "")
    )
    title = {"depth": "Table 5 — MLP depth", "width": "Table 6 — hidden width"}[axis] + f" ({subject})"
    _write(table, title=title, note=note, out_csv=out_csv, out_md=out_md, out_html=out_html)
    return table
