"""Figure fig_continuous_space (issue 23): how well each method predicts the simulator's
truth between the voxels, as the field's fine-scale part gets finer
(:mod:`nrf.experiments.continuous` runs the sweep and writes its table)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from nrf.experiments.continuous import field_order, summarise  # noqa: E402
from nrf.reporting.style import FIGURE_METHODS, style  # noqa: E402


def continuous_space_figure(table: pd.DataFrame):
    """r against the truth between the voxels as a function of the field's fine length
    scale, one line per method (± SEM), in the method's colour and marker
    (:data:`nrf.reporting.style.FIGURE_METHODS` ``["fig_continuous_space"]``)."""
    summ = summarise(table)
    fields = field_order(table)
    x = {f: i for i, f in enumerate(fields)}
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=150)
    for method in [m for m in FIGURE_METHODS["fig_continuous_space"] if m in set(summ["method"])]:
        look = style(method)
        part = summ[summ["method"] == method].copy()
        part["x"] = part["field"].map(x)
        part = part.sort_values("x")
        ax.errorbar(part["x"], part["r_mean"], yerr=part["r_sem"], marker=look.marker, capsize=3,
                    color=look.colour, label=look.name,
                    linestyle="--" if "Truth" in method else ":" if "trilinear" in method else "-")
    ax.set_xticks(range(len(fields)))
    ax.set_xticklabels(["smooth only\n(12 mm)" if f == "smooth" else f.replace("fine ", "+ fine\n")
                        for f in fields])
    ax.set_xlabel("length scale of the field's fine-scale part (mm); voxels 4.0-4.6 mm")
    ax.set_ylabel("Pearson r with the noiseless truth\nbetween the voxels (test images)")
    n_seeds = table["seed"].nunique()
    ax.set_title(f"Continuous space, {table['subject'].iloc[0]}: mean ± SEM over "
                 + (f"{n_seeds} seeds" if n_seeds > 1 else "held-out points"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    fig.tight_layout()
    return fig
