"""The adaptation tables (paper Tables 2, 3, 7, 8, 9) from the cells' tidy CSVs.

Each cell CSV (nrf.experiments.adaptation.write_cell) holds one row per method of one
(target, N, draw). A table cell here is the mean ± SEM over draws of the
per-draw median voxel r (and median MSE), with the paper's value beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.decoding.image_metrics import METRICS
from nrf.experiments.methods import (
    AVERAGE,
    ENSEMBLE,
    HELDOUT,
    LINEAR,
    SCRATCH,
    base_label,
)
from nrf.frames import read_frame, write_frame
from nrf.reporting.semantic import EXTRA_TITLES, semantic_markdown_columns
from nrf.reporting.tables import (
    _cell,
    _paper,
    _write_atomic,
    mean_sem,
    subject_summary,
    test_images_note,
    to_html,
)

#: rows of Tables 2, 7, 8, 9 at each N, in the paper's order, then ours
ADAPTATION_METHODS = (LINEAR, SCRATCH, ENSEMBLE, AVERAGE, HELDOUT)
FULL = "NRF (all data)"
LINEAR_FULL = "Linear Regression (all data)"


def read_cells(csvs) -> pd.DataFrame:
    """All cells' rows in one frame (target, n_train, draw, protocol, method, pearson, mse, steps, lambda)."""
    frames = [read_frame(path, "adaptation_cell") for path in csvs]
    if not frames:
        raise ValueError("no adaptation cells to tabulate")
    return pd.concat(frames, ignore_index=True)


def paper_cells(paper_csv, table: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(train_images, method): {metric: value}} of one paper table."""
    rows = read_frame(paper_csv, "paper")
    rows = rows[rows["table"] == table]
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows.itertuples():
        out.setdefault((str(r.train_images), r.method), {})[r.metric] = float(r.value)
    return out


def summarise_cells(cells: pd.DataFrame, methods) -> pd.DataFrame:
    """Mean ± SEM over draws per (n_train, method): one row each, in ``methods`` order."""
    rows = []
    for n in sorted(cells["n_train"].unique()):
        at_n = cells[cells["n_train"] == n]
        for method in methods:
            sub = at_n[at_n["method"] == method]
            if sub.empty:
                continue
            row = {"train_images": str(n), "method": method, "n_draws": len(sub)}
            for metric in ("pearson", "mse"):
                row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_sem(sub[metric])
            row["steps_mean"] = float(sub["steps"].mean())
            rows.append(row)
    return pd.DataFrame(rows)


def with_semantic(table: pd.DataFrame, semantic_csvs, paper: dict) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Join the cells' decoding scores (nrf.decoding.cells): per (N, method) the
    mean ± SEM over draws of each semantic metric, the paper's value beside it.
    Returns (table, display columns to append, note)."""
    if not semantic_csvs:
        return table, pd.DataFrame(index=table.index), ""

    scores = pd.concat([read_frame(p, "adaptation_decoding") for p in semantic_csvs], ignore_index=True)
    metrics = list(METRICS) + [m for m in EXTRA_TITLES if m in set(scores["metric"])]
    for metric in metrics:
        means, sems = [], []
        for n, method in zip(table["train_images"], table["method"]):
            sub = scores[(scores["metric"] == metric) & (scores["n_train"].astype(str) == n)
                         & (scores["method"] == method)]["value"]
            mean, sem = mean_sem(sub) if len(sub) and sub.notna().all() else (np.nan, np.nan)
            means.append(mean)
            sems.append(sem)
        table[f"{metric}_mean"], table[f"{metric}_sem"] = means, sems
        table[f"{metric}_paper"] = [paper.get((n, m), {}).get(metric, np.nan)
                                    for n, m in zip(table["train_images"], table["method"])]
    reasons = sorted({f"{r.metric}: {r.note}" for r in scores.itertuples() if pd.isna(r.value)})
    note = ("Semantic-level columns: each method's predicted test responses decoded by the target's offline "
            "ridge decoder (a stand-in for MindEye2; not comparable to the paper's values) and scored with "
            "MindEye2's metrics, mean ± SEM over draws. Decoded are the rows the paper reports semantic "
            "columns for (NRF scratch and the finetune ensemble at every N; every method at Table 3's N for "
            "its target); the other rows show n/a there." + "".join(f"\nn/a — {r}" for r in reasons))
    return table, semantic_markdown_columns(table), note


def _with_paper(table: pd.DataFrame, paper: dict) -> pd.DataFrame:
    for metric in ("pearson", "mse"):
        table[f"{metric}_paper"] = [
            paper.get((n, m), {}).get(metric, np.nan) for n, m in zip(table["train_images"], table["method"])
        ]
    return table


def shown(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Training images": table["train_images"],
        "Method": table["method"],
        "Pearson ↑ (this run)": [_cell(m, s) for m, s in zip(table["pearson_mean"], table["pearson_sem"])],
        "Pearson (paper)": table["pearson_paper"].map(_paper),
        "MSE ↓ (this run)": [_cell(m, s) for m, s in zip(table["mse_mean"], table["mse_sem"])],
        "MSE (paper)": table["mse_paper"].map(_paper),
    })


def _mean(table, n, method) -> float:
    sel = table[(table["train_images"] == str(n)) & (table["method"] == method)]
    return float(sel["pearson_mean"].iloc[0]) if len(sel) else np.nan


def findings(table: pd.DataFrame, shots) -> str:
    """What this run found, in one paragraph: the claims the paper makes, measured."""
    parts = []
    for n in shots:
        avg, ens, held, scratch = (_mean(table, n, m) for m in (AVERAGE, ENSEMBLE, HELDOUT, SCRATCH))
        parts.append(
            f"N = {n}: finetune average {avg:.3f}, paper's ensemble {ens:.3f}, held-out-λ ensemble {held:.3f}, "
            f"scratch {scratch:.3f} (average {'beats' if avg > scratch else 'does not beat'} scratch by "
            f"{avg - scratch:+.3f}; ensemble {'beats' if ens > scratch else 'does not beat'} scratch by "
            f"{ens - scratch:+.3f})"
        )
    return "This run: " + "; ".join(parts) + "."


def schedule_note(protocol: str) -> str:
    if protocol == "paper":
        return ("Protocol paper: every finetune and scratch model is validated on the test images once per epoch "
                "(ceil(N / batch) steps; at N = 20 with the paper's batch of 32 an epoch is a single step), with "
                "patience 5 and the best state kept, as the authors do — so at small N model selection uses "
                "the very images the table scores.")
    return ("Protocol clean: a fixed budget of steps from config (adaptation.finetune_steps / scratch_steps) "
            "and no test image before scoring.")


def write_adaptation_table(name, cell_csvs, *, target, nrf_full, linear_full, paper_csv, protocol, dataset,
                           test_images, out_csv, out_md, out_html, semantic_csvs=()) -> pd.DataFrame:
    """Tables 2, 7, 8, 9: per N, linear / scratch / finetune ensemble (and ours), plus full-data rows."""
    cells = read_cells(cell_csvs)
    table = summarise_cells(cells, ADAPTATION_METHODS)
    full = []
    for method, path in ((FULL, nrf_full), (LINEAR_FULL, linear_full)):
        s = subject_summary(path)
        full.append({"train_images": "full", "method": method, "n_draws": 1, "pearson_mean": s["pearson"],
                     "pearson_sem": np.nan, "mse_mean": s["mse"], "mse_sem": np.nan, "steps_mean": np.nan})
    paper = paper_cells(paper_csv, name)
    table = _with_paper(pd.concat([table, pd.DataFrame(full)], ignore_index=True), paper)
    table, semantic_display, semantic_note = with_semantic(table, semantic_csvs, paper)
    table.insert(0, "target", target)
    table.insert(1, "protocol", protocol)
    table.insert(2, "dataset", dataset)
    write_frame(table, out_csv, "table")
    shots = sorted(cells["n_train"].unique())
    bases = sorted({m.split("base ")[1].split("->")[0] for m in cells["method"] if m.startswith("NRF finetune base")})
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}**; target **{target}**, bases {', '.join(bases)}. "
        f"Cells: median voxel Pearson r and MSE on the target's test images, mean ± SEM over "
        f"{cells['draw'].nunique()} random draws of the N training images (the same draws for every method). "
        "'NRF finetune ensemble' is the paper's voxelwise least squares with bias on the N images; "
        "'(held-out λ)' is ours, shrunk toward the average by cross-validation on the N images. "
        + schedule_note(protocol) + " " + test_images_note(dataset, test_images) + "\n"
        + findings(table, shots)
    ) + (f"\n\n{semantic_note}" if semantic_note else "")
    title = f"{name.capitalize()} — cross-subject adaptation to {target}"
    display = shown(table).join(semantic_display)
    _write_atomic(out_md, f"# {title}\n\n{display.to_markdown(index=False)}\n\n{note}\n")
    _write_atomic(out_html, to_html(display, title=title, note=note))
    return table


def write_table3(cell_csvs, *, paper_csv, protocol, dataset, test_images, out_csv, out_md, out_html,
                 semantic_csvs=()) -> pd.DataFrame:
    """Table 3: the paper's ensemble vs the simple average vs each single finetuned base (and ours)."""
    cells = read_cells(cell_csvs)
    target = str(cells["target"].iloc[0])
    bases = sorted({m.split("base ")[1].split("->")[0] for m in cells["method"] if m.startswith("NRF finetune base")})
    methods = [ENSEMBLE, AVERAGE] + [base_label(b, target) for b in bases] + [HELDOUT]
    paper = paper_cells(paper_csv, "table3")
    table = _with_paper(summarise_cells(cells, methods), paper)
    table, semantic_display, semantic_note = with_semantic(table, semantic_csvs, paper)
    table.insert(0, "target", target)
    table.insert(1, "protocol", protocol)
    table.insert(2, "dataset", dataset)
    write_frame(table, out_csv, "table")
    n = table["train_images"].iloc[0]
    best = table.loc[table["pearson_mean"].idxmax(), "method"]
    lam = cells[cells["method"] == HELDOUT]["lambda"]
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}**; target **{target}**, N = {n} training images, mean ± "
        f"SEM over {cells['draw'].nunique()} draws. The paper finds the simple average above its own ensemble "
        "at N = 200 (0.253 vs 0.227): least-squares weights fitted on the same N images overfit. "
        f"This run: best is '{best}' ({table['pearson_mean'].max():.3f}); ensemble "
        f"{_mean(table, n, ENSEMBLE):.3f} vs average {_mean(table, n, AVERAGE):.3f}; our held-out-λ ensemble "
        f"{_mean(table, n, HELDOUT):.3f} (λ chosen: {', '.join(f'{v:g}' for v in lam)}). "
        + schedule_note(protocol) + " " + test_images_note(dataset, test_images)
    ) + (f"\n\n{semantic_note}" if semantic_note else "")
    title = f"Table 3 — ensemble vs average vs single finetuned bases ({target}, N = {n})"
    display = shown(table).join(semantic_display)
    _write_atomic(out_md, f"# {title}\n\n{display.to_markdown(index=False)}\n\n{note}\n")
    _write_atomic(out_html, to_html(display, title=title, note=note))
    return table
