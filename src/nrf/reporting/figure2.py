"""Figure 2: accuracy in the low-data regime (a) and, for subj07, per voxel on
the cortical surface (b). Numbers come from the cells' files the DAG wrote."""

from __future__ import annotations

import h5py
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from nrf.checks import open_hdf5  # noqa: E402
from nrf.data.prepared import load_prepared  # noqa: E402
from nrf.experiments.methods import LINEAR, SCRATCH  # noqa: E402
from nrf.reporting.adaptation_tables import read_cells  # noqa: E402
from nrf.reporting.brain_maps import coords_to_volume, plot_surface_panels  # noqa: E402
from nrf.reporting.style import FIGURE_METHODS, display_name, style  # noqa: E402
from nrf.reporting.tables import mean_sem, subject_summary  # noqa: E402


def fig2a_table(cell_csvs, full_scores: dict[str, list], subjects) -> pd.DataFrame:
    """Tidy rows (method, n_train, mean, sem over subjects) of Figure 2a.

    Per subject the draws are averaged first, then mean ± SEM across subjects.
    ``full_scores`` maps a method to its full-data score CSVs (one per subject).
    """
    cells = read_cells(cell_csvs)
    per_subject = cells.groupby(["method", "n_train", "target"])["pearson"].mean().reset_index()
    rows = []
    for (method, n), sub in per_subject.groupby(["method", "n_train"]):
        mean, sem = mean_sem(sub["pearson"])
        rows.append({"method": method, "n_train": str(n), "mean": mean, "sem": sem, "n_subjects": len(sub)})
    for method, paths in full_scores.items():
        mean, sem = mean_sem([subject_summary(p)["pearson"] for p in paths])
        rows.append({"method": method, "n_train": "full", "mean": mean, "sem": sem, "n_subjects": len(paths)})
    return pd.DataFrame(rows)


def figure2a(table: pd.DataFrame, *, n_full: int, dataset: str, protocol: str):
    """Median test r against training images (log axis), NRF scratch vs linear, ± SEM over subjects."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=150)
    for method in FIGURE_METHODS["fig2a"]:
        sub = table[table["method"] == method].copy()
        sub["x"] = [n_full if n == "full" else int(n) for n in sub["n_train"]]
        sub = sub.sort_values("x")
        look = style(method)
        ax.errorbar(sub["x"], sub["mean"], yerr=sub["sem"].fillna(0), marker=look.marker, capsize=3,
                    color=look.colour, label=look.name)
    ax.set_xscale("log")
    ticks = sorted({int(n) for n in table["n_train"] if n != "full"} | {n_full})
    ax.set_xticks(ticks)
    # the full set can sit close to the largest N on a log axis: slanted labels never overlap
    ax.set_xticklabels(["full" if t == n_full else str(t) for t in ticks], rotation=30, ha="right")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # only the N trained at
    ax.set_xlabel(f"training images (log scale; full = {n_full})")
    ax.set_ylabel("median voxel Pearson r (test images)")
    ax.set_title(f"Low-data regime ({dataset}, {protocol} protocol)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.text(0.01, 0.01, "This run, NRF − linear: " + _gaps(table, n_full), fontsize=6.5, ha="left", va="bottom",
             wrap=True)
    return fig


def _gaps(table: pd.DataFrame, n_full: int) -> str:
    """NRF scratch minus linear median r at every N, as the figure's footnote says what this run found."""
    means = table.pivot_table(index="n_train", columns="method", values="mean", aggfunc="first")
    parts = []
    for n in sorted(means.index, key=lambda n: n_full if n == "full" else int(n)):
        if {SCRATCH, LINEAR} <= set(means.columns) and means.loc[n, [SCRATCH, LINEAR]].notna().all():
            label = f"full ({n_full})" if n == "full" else f"N={n}"
            parts.append(f"{label}: {means.at[n, SCRATCH] - means.at[n, LINEAR]:+.3f}")
    return ", ".join(parts) or "n/a"


def voxel_r_by_method(cell_hdf5s, methods) -> dict[str, np.ndarray]:
    """Per-voxel r of each method, averaged over the draws' cell files."""
    sums: dict[str, np.ndarray] = {}
    for path in cell_hdf5s:
        with open_hdf5(path, what="adaptation cell file") as f:
            for group in f.values():
                if isinstance(group, h5py.Group) and group.attrs["method"] in methods:
                    r = np.nan_to_num(group["pearson"][()].astype(np.float64))
                    sums[group.attrs["method"]] = sums.get(group.attrs["method"], 0) + r
    return {m: sums[m] / len(cell_hdf5s) for m in methods if m in sums}


def figure2b(cell_hdf5s, prepared_path, *, n_train: int, dataset: str, protocol: str):
    """Per-voxel r of the finetune ensemble, NRF scratch and linear for one target, on fsaverage5."""
    prep = load_prepared(prepared_path, splits=())
    r = voxel_r_by_method(cell_hdf5s, FIGURE_METHODS["fig2b"])
    return surface_figure(r, prep.coords, subject=prep.subject, n_train=n_train, n_draws=len(cell_hdf5s),
                          dataset=dataset, protocol=protocol)


def surface_figure(r: dict[str, np.ndarray], coords, *, subject: str, n_train: int, n_draws: int, dataset: str,
                   protocol: str):
    """Figure 2b from per-voxel r per method ({method: (n_voxels,)}) at the voxels' MNI ``coords``."""
    vmax = float(np.percentile(np.concatenate(list(r.values())), 99))
    vmax = vmax if vmax > 0 else 1.0
    volumes, colours = {}, {}
    for method, values in r.items():
        title = f"{display_name(method)}\nmedian r = {np.median(values):.3f}"
        volumes[title] = coords_to_volume(coords, np.clip(values, 0, None))
        colours[title] = style(method).colour
    fig = plt.figure(figsize=(2.9 * len(volumes) + 0.9, 4.6))
    grid = fig.add_gridspec(1, 1, left=0.05, right=0.93, top=0.84, bottom=0.02)[0]
    plot_surface_panels(fig, volumes, vmax=vmax, title_colours=colours, grid=grid,
                        colorbar_label="voxel Pearson r (test images)")
    fig.suptitle(f"Figure 2b: {subject}, N = {n_train} training images, r averaged over {n_draws} draws\n"
                 f"({dataset}, {protocol} protocol; grey: sulcal depth, not coloured where r ≤ 0 or no voxel)",
                 fontsize=9)
    return fig
