"""Figure 4: the perturbation probes, median test r against training images.

Three panels, one per probe (nrf.perturbations): (a) NRF scratch with coordinates
intact / shuffled globally / shuffled within ROI; (b) EBA-only and (c)
V1-only finetuning of the base subject's NRF on the target, aligned vs
shifted coordinates. Each point is the mean over draws of the per-draw
median voxel r, with ± SEM bars; x is log-scaled.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from nrf.frames import read_frame, write_frame  # noqa: E402
from nrf.perturbations import ALIGNED, INTACT, ROWS  # noqa: E402
from nrf.reporting.style import FIGURE_METHODS, log_count_axis, save_figure, style  # noqa: E402


def read_rows(csvs) -> pd.DataFrame:
    """The probe CSVs (nrf.perturbations.ROWS columns) as one table."""
    frames = [read_frame(p, "probe_rows") for p in csvs]
    table = pd.concat(frames, ignore_index=True)
    missing = [c for c in ROWS if c not in table.columns]
    if missing:
        raise ValueError(f"probe tables lack columns {missing}: {list(map(str, csvs))}")
    return table


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and SEM over draws: panel, condition, n_train, pearson_mean, pearson_sem, n_draws."""
    def sem(x):
        return x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan

    g = rows.groupby(["panel", "condition", "n_train"], sort=True)["pearson"]
    return g.agg(pearson_mean="mean", pearson_sem=sem, n_draws="count").reset_index()


def findings(summ: pd.DataFrame) -> list[str]:
    """What this run found, one line per panel: the gap between the intact (or
    aligned) condition and each perturbed one at every N."""
    lines = []
    panels = sorted(summ["panel"].unique(), key=lambda p: (p != "a", p))  # the shuffle panel first
    for panel in panels:
        part = summ[summ["panel"] == panel]
        mean = part.pivot_table(index="n_train", columns="condition", values="pearson_mean")
        reference = INTACT if panel == "a" else ALIGNED
        if reference not in mean:
            continue
        for other in [c for c in mean.columns if c != reference]:
            gaps = ", ".join(f"N={n}: {g:+.3f}" for n, g in (mean[reference] - mean[other]).items())
            lines.append(f"({panel}) {reference} − {other}: {gaps}")
    return lines


def figure4(rows: pd.DataFrame, *, dataset: str, protocol: str):
    """One panel per probe, in the order the rows name them ("a", then each ROI)."""
    summ = summary(rows)
    panels = list(dict.fromkeys(rows["panel"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, panel, letter in zip(axes[0], panels, "abcdefgh"):
        part = summ[summ["panel"] == panel]
        subject = ", ".join(sorted(rows.loc[rows["panel"] == panel, "subject"].unique()))
        conditions = [c for c in FIGURE_METHODS["fig4"] if c in set(part["condition"])]
        for i, condition in enumerate(conditions):
            line = part[part["condition"] == condition].sort_values("n_train")
            look = style(condition)
            # ± SEM only where a point has >= 2 draws (its SEM is NaN otherwise): no bar, not a zero bar
            yerr = line["pearson_sem"] if line["pearson_sem"].notna().any() else None
            dodge = np.exp(0.04 * (i - (len(conditions) - 1) / 2))  # side by side at each N: no bar hides another
            ax.errorbar(line["n_train"] * dodge, line["pearson_mean"], yerr=yerr, color=look.colour,
                        marker=look.marker, capsize=3, label=look.name)
        title = "NRF scratch, coordinate shuffles" if panel == "a" else f"{panel} only: finetune, aligned vs shifted"
        ax.set_title(f"({letter}) {title}\n{subject}", fontsize=9)
        log_count_axis(ax, part["n_train"])
        ax.set_xlabel("training images (count, log scale)")
        ax.set_ylabel("median test Pearson r (voxels)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    n_draws = int(summ["n_draws"].max()) if len(summ) else 0
    bars = f"mean ± SEM over {n_draws} draws" if n_draws >= 2 else "one draw per point, no error bars"
    fig.suptitle(f"Figure 4 — probes ({dataset}, {protocol} protocol; {bars})", fontsize=10)
    lines = findings(summ)
    fig.text(0.01, 0.01, "This run, median r gaps: " + "; ".join(lines), fontsize=7, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.03 * (1 + len(lines) // 2), 1, 1))
    return fig


def write_figure4(csvs, *, dataset: str, protocol: str, out_png, out_pdf, out_csv) -> pd.DataFrame:
    """Figure 4 as PNG and PDF, and its numbers (mean ± SEM per point) as CSV."""
    rows = read_rows(csvs)
    fig = figure4(rows, dataset=dataset, protocol=protocol)
    save_figure(fig, out_png, out_pdf)
    summ = summary(rows)
    write_frame(summ, out_csv, "table")
    return summ
