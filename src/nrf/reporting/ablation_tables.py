"""Tables 4–6 (ablations): this run's numbers beside the paper's.

Table 4 (finetune strategy): per draw, the median voxel r and MSE of the
target's test images; mean ± SEM over draws. Tables 5 and 6 (MLP depth and
hidden width): one full-data training per row (no draws, so no SEM), scored
like Table 1 (median over voxels); with seed replicates (ablations.seeds), one
training per (row, seed) and the mean ± SEM over seeds (and the SD).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.checks import read_json
from nrf.frames import read_frame, write_frame
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


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """The reader's columns (nrf.reporting.tables.shown_columns), and with seed replicates
    the SD over seeds and each seed's median r."""
    shown = shown_columns(table)
    if "pearson_sd" in table:
        shown.insert(2, "Pearson SD over seeds", [f"{v:.3f}" if np.isfinite(v) else "n/a" for v in table["pearson_sd"]])
        shown.insert(3, "Pearson per seed", table["pearson_seeds"].tolist())
    return shown


def _write(table: pd.DataFrame, *, title: str, note: str, out_csv, out_md, out_html) -> None:
    write_frame(table, out_csv, "table")
    _write_atomic(out_md, to_markdown(_shown(table), title=title, note=note))
    _write_atomic(out_html, to_html(_shown(table), title=title, note=note))


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


def architecture_table(score_csvs: dict, paper: pd.DataFrame, paper_rows=None) -> pd.DataFrame:
    """One row per method label (e.g. "NRF depth 8"): the median voxel r and MSE of its one training,
    or, where a label maps to a list of score CSVs (one per seed), the mean, SEM and SD over them
    (n_seeds, pearson_sd, mse_sd and the per-seed medians pearson_seeds added).

    paper_rows : the paper's label to set beside each row (default: its own label)
    """
    rows = []
    for method, paths in score_csvs.items():
        if isinstance(paths, (list, tuple)):
            per_seed = [subject_summary(path) for path in paths]
            row = {"method": method, "n_draws": 1, "n_seeds": len(per_seed)}
            for metric in VOXEL_METRICS:
                values = np.array([s[metric] for s in per_seed])
                row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_sem(values)
                row[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else np.nan
            row["pearson_seeds"] = " ".join(f"{s['pearson']:.4f}" for s in per_seed)
            rows.append(row)
            continue
        s = subject_summary(paths)
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
    """A training summary JSON (nrf.experiments.ablations.training_summary), verified; a damaged one is named."""
    return read_json(path, "training summary")


def _cap_note(table: pd.DataFrame, max_steps: int) -> str:
    """Which rows the step cap ended while their validation r was still rising."""
    rising = table.loc[table["improving_at_cap"], "method"].tolist()
    if not rising:
        return "Every row stopped early or peaked before the step cap."
    if "seeds_at_cap" in table and "n_seeds" in table:
        at_cap = table.loc[table["improving_at_cap"]]
        rising = [f"{m} ({k} of {n} seeds)" for m, k, n in
                  zip(at_cap["method"], at_cap["seeds_at_cap"], at_cap["n_seeds"])]
    return (f"Still improving when the {max_steps}-step cap ended training: {', '.join(rising)} (best validation r "
            f"at the last evaluation), so these rows show how fast each size learns within the cap, not what it "
            f"can reach.")


def _seed_groups(items, n_values: int, n_seeds: int) -> list[list]:
    """A value-major, seed-minor list (rules/common.smk's architecture_files) cut into one list per value."""
    return [list(items[i * n_seeds:(i + 1) * n_seeds]) for i in range(n_values)]


def _seed_summaries(summaries: list[dict]) -> dict:
    """One row's steps, best step and cap flag over its seeds: the mean steps and best step (rounded),
    and whether any seed was still improving at the cap."""
    best = [s["best_step"] for s in summaries if s["best_step"] is not None]
    return {"steps": round(float(np.mean([s["steps"] for s in summaries]))),
            "best_step": round(float(np.mean(best))) if best else None,
            "improving_at_cap": any(bool(s["improving_at_cap"]) for s in summaries),
            "seeds_at_cap": sum(bool(s["improving_at_cap"]) for s in summaries)}


def _seed_note(table: pd.DataFrame, seeds) -> str:
    """What the spread of each row is, and which differences it cannot tell apart."""
    k = len(seeds)
    mean = table["pearson_mean"].to_numpy(float)
    sem = table["pearson_sem"].to_numpy(float)
    best = int(np.argmax(mean))
    within = [table["method"].iloc[i] for i in range(len(table))
              if i != best and abs(mean[best] - mean[i]) <= 2 * np.hypot(sem[best], sem[i])]
    return (f"Seeds {', '.join(map(str, seeds))}: each row trained {k} times (the seed sets the initial weights "
            f"and the batches; the data and the Fourier matrix B are the same), cells mean ± SEM over the {k} "
            f"seeds (the SD over seeds is the CSV's pearson_sd). "
            + (f"Within 2 SEM of the best row: {', '.join(within)}." if within
               else "Every other row lies beyond 2 SEM of the best."))


def write_architecture_table(name: str, axis: str, values, score_csvs, *, paper_csv, subject: str, protocol: str,
                             dataset: str, test_images: str, fixed: dict, max_steps: int,
                             out_csv, out_md, out_html, trainings=None, seeds=None,
                             min_steps: int | None = None) -> pd.DataFrame:
    """Table 5 (axis "depth") or Table 6 (axis "width"): one NRF per value on the full training set.

    score_csvs : per-voxel score CSVs in the order of ``values``; with ``seeds``, one per (value, seed),
                 value-major (each value's seeds together, in the order of ``seeds``)
    trainings  : the trainings' summaries (JSON, nrf.experiments.ablations.training_summary) in the same order;
                 they add steps, the best step and whether the cap cut a still-improving run short
    fixed      : the other sizes, e.g. {"width": 128}
    seeds      : the seed replicates (ablations.seeds), or None for one training per row (no spread)
    min_steps  : ablations.min_steps, named in the note where set (no early stop before it)
    """
    per_value = 1 if seeds is None else len(seeds)
    expected = len(values) * per_value
    if len(score_csvs) != expected or (trainings is not None and len(trainings) != expected):
        raise ValueError(f"{name}: {len(score_csvs)} score files and {len(trainings or [])} training summaries "
                         f"for {len(values)} {axis}s" + ("" if seeds is None else f" x {len(seeds)} seeds"))
    paper = paper_values(paper_csv, name)
    matched, how = paper_rows_for(axis, values, paper)
    labels = [f"NRF {axis} {v}" for v in values]
    if seeds is not None:
        score_csvs = _seed_groups(score_csvs, len(values), per_value)
    table = architecture_table(dict(zip(labels, score_csvs)), paper, matched)
    table.insert(1, axis, list(values))
    table.insert(2, "protocol", protocol)
    table.insert(3, "dataset", dataset)
    if trainings is not None:
        summaries = [_training_summary(t) for t in trainings]
        if seeds is not None:
            summaries = [_seed_summaries(group) for group in _seed_groups(summaries, len(values), per_value)]
        table["steps"] = [s["steps"] for s in summaries]
        table["best_step"] = [s["best_step"] for s in summaries]
        table["improving_at_cap"] = [bool(s["improving_at_cap"]) for s in summaries]
        if seeds is not None:
            table["seeds_at_cap"] = [s["seeds_at_cap"] for s in summaries]
    other = ", ".join(f"{k} {v}" for k, v in fixed.items())
    cells = ("Cells: median over voxels of the test Pearson r and MSE (one training per row, so no SEM). "
             if seeds is None else
             f"Cells: median over voxels of the test Pearson r and MSE, mean ± SEM over {per_value} seeds. ")
    note = (
        f"Dataset: **{dataset}**; protocol: **{protocol}**. "
        + (f"One NRF per row ({other})" if seeds is None else f"One NRF per row and seed ({other})")
        + f" trained on {subject}'s full training set with the pipeline's schedule (at most {max_steps} steps"
        + (f", none stopped before step {min(min_steps, max_steps)}" if min_steps else "")  # as capped() lowers it
        + (", early stopping on the test images as the authors do" if protocol == "paper" else "")
        + "). " + cells
        + how + " " + test_images_note(dataset, test_images) + f" This run: {_best(table)}"
        + ("" if seeds is None else " " + _seed_note(table, seeds))
        + (" " + _cap_note(table, max_steps) if trainings is not None else "")
        + (" The paper column is real NSD with CLIP ViT-B/16; a simulated run is not expected to match it."
           if dataset != "nsd" else "")
    )
    title = {"depth": "Table 5 — MLP depth", "width": "Table 6 — hidden width"}[axis] + f" ({subject})"
    _write(table, title=title, note=note, out_csv=out_csv, out_md=out_md, out_html=out_html)
    return table
