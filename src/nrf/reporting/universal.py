"""The Universal Brain Encoder's table and figures (issue 9):

* :func:`write_table_universal`: per subject, single-subject vs joint
  Universal vs NRF: median r, % of noise ceiling, top-1/top-5 retrieval.
* :func:`plot_transfer`: median r against the number of target images, for
  Universal transfer (its own score files) and NRF scratch, NRF finetune
  ensemble and Linear Regression (the target's adaptation cells: the numbers
  of Tables 2/7-9 and Figure 2a).
* :func:`plot_clusters`: k-means clusters of two subjects' voxel embeddings
  drawn in MNI space (nilearn), each cluster's top-activating test images,
  and, on the simulator, the adjusted Rand index against ground-truth regions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from nrf.atomic import atomic_output  # noqa: E402
from nrf.data.prepared import load_prepared
from nrf.features.cache import read_stimuli
from nrf.frames import read_frame, write_frame  # noqa: E402
from nrf.reporting.adaptation_tables import read_cells  # noqa: E402
from nrf.reporting.encoders import median_normalised, retrieval_of  # noqa: E402
from nrf.reporting.style import (  # noqa: E402
    FIGURE_METHODS,
    OKABE_ITO,
    UNIVERSAL_TRANSFER,
    log_count_axis,
    save_figure,
    style,
)
from nrf.reporting.tables import mean_sem, subject_summary, to_html  # noqa: E402

logger = logging.getLogger(__name__)

#: cluster colours (Okabe-Ito, colour-blind safe): clusters are not methods
PALETTE = tuple(OKABE_ITO[c] for c in ("blue", "orange", "bluish green", "reddish purple", "sky blue",
                                         "vermillion", "yellow", "black"))

#: the transfer figure's points, one per curve, N and draw (its CSV)
CURVE_COLUMNS = ("method", "n_train", "draw", "median_r")


def _write_text(path, text: str) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


# -- table ---------------------------------------------------------------------------
def write_table_universal(methods: dict[str, dict[str, list]], subjects: list[str], voxel_csvs: list, *,
                          dataset: str, out_csv, out_md, out_html) -> pd.DataFrame:
    """One row per subject and method.

    ``methods`` maps a method name to {"scores": [csv per subject],
    "retrieval": [csv per subject]}.
    """
    rows = []
    for i, subject in enumerate(subjects):
        for method, files in methods.items():
            r = retrieval_of(files["retrieval"][i])
            rows.append({
                "subject": subject, "method": method,
                "median_r": subject_summary(files["scores"][i])["pearson"],
                "nc_percent": median_normalised(files["scores"][i], voxel_csvs[i]),
                "top1": r["top1"], "top5": r["top5"], "mean_rank": r["mean_rank"],
                "chance_top1": r["chance_top1"], "chance_top5": r["chance_top5"], "n_test_images": r["n_images"],
            })
    table = pd.DataFrame(rows)
    write_frame(table, out_csv, "table")
    shown = pd.DataFrame({
        "Subject": table["subject"], "Method": table["method"],
        "Median r ↑": table["median_r"].map("{:.3f}".format),
        "% of noise ceiling ↑": table["nc_percent"].map("{:.1f}".format),
        "Top-1 % ↑": (100 * table["top1"]).map("{:.1f}".format),
        "Top-5 % ↑": (100 * table["top5"]).map("{:.1f}".format),
        "Mean rank ↓": table["mean_rank"].map("{:.1f}".format),
    })
    n = int(table["n_test_images"].iloc[0]) if len(table) else 0
    note = (f"Dataset: **{dataset}**. Universal (single): one encoder per subject; Universal (all subjects): "
            "one encoder trained jointly on every subject, sharing all weights but the voxel embeddings. "
            f"Retrieval among the {n} test images by correlation of measured and predicted responses; "
            f"chance top-1 {100 / max(n, 1):.1f} %, top-5 {100 * min(5, n) / max(n, 1):.1f} %, "
            f"mean rank {(n + 1) / 2:.1f}. % of noise ceiling: median over voxels of 100·r|r|/NC.")
    title = "Universal Brain Encoder: single- vs multi-subject training"
    _write_text(out_md, f"# {title}\n\n{shown.to_markdown(index=False)}\n\n{note}\n")
    _write_text(out_html, to_html(shown, title=title, note=note))
    return table


# -- transfer figure -----------------------------------------------------------------
def universal_curve(score_csvs, shots, draws: int) -> pd.DataFrame:
    """Universal transfer's points (CURVE_COLUMNS) from its per-voxel score CSVs,
    listed shot-major (``shots``), draw-minor (``range(draws)``)."""
    score_csvs = list(score_csvs)
    if len(score_csvs) != len(shots) * draws:
        raise ValueError(f"{len(score_csvs)} Universal transfer score files for {len(shots)} shots x {draws} draws")
    rows = [{"method": UNIVERSAL_TRANSFER, "n_train": int(n), "draw": d,
             "median_r": subject_summary(score_csvs[k * draws + d])["pearson"]}
            for k, n in enumerate(shots) for d in range(draws)]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def cell_curves(cell_csvs, *, target: str, shots, methods=None) -> pd.DataFrame:
    """The target's adaptation cells as curve points (CURVE_COLUMNS): per method, N and
    draw the cell's median voxel r, the very numbers Tables 2/7-9 and Figure 2a show.
    ``methods``: the transfer figure's few-image methods by default."""
    if methods is None:
        methods = [m for m in FIGURE_METHODS["fig_universal_transfer"] if m != UNIVERSAL_TRANSFER]
    cells = read_cells(cell_csvs)
    others = sorted(set(cells["target"]) - {target})
    if others:
        raise ValueError(f"adaptation cells of {others} given for the transfer figure of {target}")
    missing = sorted({int(n) for n in shots} - set(cells["n_train"].astype(int)))
    if missing:
        raise ValueError(f"no adaptation cells of {target} at N = {missing}")
    cells = cells[cells["method"].isin(list(methods))]
    return pd.DataFrame({"method": cells["method"], "n_train": cells["n_train"].astype(int),
                         "draw": cells["draw"].astype(int), "median_r": cells["pearson"].astype(float)},
                        columns=list(CURVE_COLUMNS)).reset_index(drop=True)


def transfer_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per method and N: the mean over draws of the median r, its SEM (NaN under 2 draws), the draw count."""
    rows = []
    for (method, n), part in points.groupby(["method", "n_train"], sort=False):
        mean, sem = mean_sem(part["median_r"])
        rows.append({"method": method, "n_train": int(n), "mean": mean,
                     "sem": sem if len(part) >= 2 else np.nan, "n_draws": len(part)})
    return pd.DataFrame(rows, columns=["method", "n_train", "mean", "sem", "n_draws"])


def transfer_figure(points: pd.DataFrame, *, target: str, dataset: str):
    """One line per method in its style (nrf.reporting.style): the mean over draws, ± SEM bars where >= 2 draws."""
    summary = transfer_summary(points)
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    order = list(FIGURE_METHODS["fig_universal_transfer"])
    methods = sorted(dict.fromkeys(summary["method"]), key=lambda m: order.index(m) if m in order else 99)
    for i, method in enumerate(methods):
        part = summary[summary["method"] == method].sort_values("n_train")
        look = style(method)
        yerr = part["sem"] if part["sem"].notna().any() else None
        dodge = np.exp(0.035 * (i - (len(methods) - 1) / 2))  # side by side at each N, so no bar hides another
        ax.errorbar(part["n_train"] * dodge, part["mean"], yerr=yerr, marker=look.marker, capsize=3, color=look.colour,
                    label=f"{look.name} ({_draws(part['n_draws'])})")
    log_count_axis(ax, summary["n_train"])  # ticks at the N trained at, plain numbers
    ax.set_xlabel(f"training images of the held-out subject ({target}), N (log scale)")
    ax.set_ylabel("median voxel Pearson r (test images)")
    ax.set_title(f"Transfer to a held-out subject ({dataset})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=1)
    fig.tight_layout()
    return fig


def _draws(n_draws: pd.Series) -> str:
    low, high = int(n_draws.min()), int(n_draws.max())
    if high < 2:
        return "1 draw, no error bar"
    return f"mean ± SEM over {low if low == high else f'{low}-{high}'} draws"


def plot_transfer(points: pd.DataFrame, *, target: str, dataset: str, out_png, out_pdf, out_csv,
                  log: logging.Logger | None = None) -> pd.DataFrame:
    """Write the transfer figure and its points (CURVE_COLUMNS, one row per draw) as CSV; returns the summary."""
    log = log or logger
    write_frame(points, out_csv, "table")
    save_figure(transfer_figure(points, target=target, dataset=dataset), out_png, out_pdf)
    summary = transfer_summary(points)
    log.info("transfer curves (mean, SEM over draws):\n%s", summary.to_string(index=False))
    return summary


# -- clusters figure -----------------------------------------------------------------
def cluster_embeddings(embeddings: list[np.ndarray], k: int, seed: int) -> list[np.ndarray]:
    """k-means (scikit-learn, seeded) on the stacked embeddings of several
    subjects; the labels split back per subject."""
    from sklearn.cluster import KMeans  # scikit-learn: optional; only the clusters figure needs it

    stacked = np.concatenate(embeddings)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(stacked)
    return np.split(labels, np.cumsum([len(e) for e in embeddings])[:-1])


def region_agreement(labels: np.ndarray, regions: np.ndarray, *, n_permutations: int = 200, seed: int = 0
                     ) -> dict[str, float]:
    """Adjusted Rand index of clusters vs ground-truth regions, and its chance
    distribution under random relabelling (mean, 95th percentile, p)."""
    from sklearn.metrics import adjusted_rand_score  # scikit-learn: optional; only the clusters figure needs it

    rng = np.random.default_rng(seed)
    ari = adjusted_rand_score(regions, labels)
    null = np.array([adjusted_rand_score(regions, rng.permutation(labels)) for _ in range(n_permutations)])
    return {"ari": float(ari), "chance_mean": float(null.mean()), "chance_95": float(np.quantile(null, 0.95)),
            "p_value": float((1 + np.sum(null >= ari)) / (1 + n_permutations))}


def top_images(responses: np.ndarray, labels: np.ndarray, k: int, n_top: int) -> dict[int, np.ndarray]:
    """Rows of the n_top test images with the highest mean response over each
    cluster's voxels: {cluster: (n_top,) row indices}. responses (n_img, n_vox)."""
    out = {}
    for c in range(k):
        inside = labels == c
        if inside.any():
            out[c] = np.argsort(-responses[:, inside].mean(axis=1))[:n_top]
    return out


def plot_clusters(coords: list[np.ndarray], labels: list[np.ndarray], subjects: list[str],
                  top: dict[int, np.ndarray], images: np.ndarray, *, k: int, agreement: dict | None,
                  dataset: str, out_png, out_pdf) -> None:
    """Glass brains (one per subject) with voxels coloured by cluster, and each
    cluster's top test images (``images`` (n_test, H, W, 3), rows as ``top``)."""
    from nilearn import plotting  # nilearn: heavy; only the clusters figure needs it

    n_top = max((len(v) for v in top.values()), default=0)
    fig = plt.figure(figsize=(4 + 1.2 * n_top, 2.6 * len(subjects) + 1.3 * k))
    grid = fig.add_gridspec(len(subjects) + k, max(n_top, 1), height_ratios=[2.6] * len(subjects) + [1.3] * k,
                            left=0.05, right=0.98, top=1 - 0.55 / fig.get_figheight(), bottom=0.01, hspace=0.15)
    cmap = ListedColormap(PALETTE[:k])
    for i, (subject, xyz, lab) in enumerate(zip(subjects, coords, labels)):
        ax = fig.add_subplot(grid[i, :])
        display = plotting.plot_glass_brain(None, axes=ax, display_mode="lzr", title=f"{subject}: k-means clusters")
        for c in range(k):
            inside = lab == c
            if inside.any():
                display.add_markers(xyz[inside], marker_color=PALETTE[c], marker_size=4)
    for c in range(k):
        rows = top.get(c, [])
        for j in range(max(n_top, 1)):
            ax = fig.add_subplot(grid[len(subjects) + c, j])
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows):
                ax.imshow(images[rows[j]])
            for spine in ax.spines.values():
                spine.set_edgecolor(cmap(c))
                spine.set_linewidth(3)
            if j == 0:
                ax.set_ylabel(f"cluster {c + 1}", color=cmap(c))
    title = f"Universal voxel embeddings, {k} clusters ({dataset}); rows below: top test images per cluster"
    if agreement is not None:
        title += (f"\nARI vs ground-truth regions {agreement['ari']:.2f} "
                  f"(chance {agreement['chance_mean']:.2f}, 95% {agreement['chance_95']:.2f})")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, out_png, out_pdf)


def clusters_figure(embeddings: dict, subjects: list[str], prepared: list, voxel_csvs: list, stimuli, *, k: int,
                    n_top: int, seed: int, dataset: str, out_png, out_pdf, out_csv,
                    log: logging.Logger | None = None) -> dict:
    """The cluster figure from a joint Universal checkpoint's voxel embeddings
    (``{subject: (n_voxels, E)}``, nrf.experiments.transfer.embeddings_of: this
    module stays torch-free for the table and transfer-figure jobs); writes per-voxel
    labels (subject, voxel, x, y, z, cluster[, region]) to ``out_csv`` and,
    where every voxel table has a ``region`` column, the ARI to the log and
    the figure. Top images are ranked by the measured test responses
    averaged over each cluster's voxels, pooled over the subjects."""

    log = log or logger
    emb = {s: embeddings[s] for s in subjects}
    labels = cluster_embeddings([emb[s] for s in subjects], k, seed)
    voxels = [read_frame(v, "voxels") for v in voxel_csvs]
    for s, v, e in zip(subjects, voxels, emb.values()):
        if len(v) != len(e):
            raise ValueError(f"{s}: {len(e)} embeddings in the checkpoint, {len(v)} voxels in its voxel table")
    tests = [load_prepared(p, splits=("test",)).test for p in prepared]
    ids = tests[0].image_ids
    if any(not np.array_equal(t.image_ids, ids) for t in tests):
        raise ValueError(f"{subjects} do not share their test images: top images cannot be pooled")
    pooled = np.concatenate([t.responses for t in tests], axis=1)
    top = top_images(pooled, np.concatenate(labels), k, n_top)
    images = read_stimuli(stimuli, ids[np.unique(np.concatenate(list(top.values())))])
    index = {row: i for i, row in enumerate(np.unique(np.concatenate(list(top.values()))))}
    top_local = {c: np.array([index[r] for r in rows]) for c, rows in top.items()}

    table = pd.concat([v[["voxel", "x", "y", "z"]].assign(subject=s, cluster=lab + 1)
                       for s, v, lab in zip(subjects, voxels, labels)], ignore_index=True)
    agreement = None
    if all("region" in v for v in voxels):
        regions = np.concatenate([v["region"].to_numpy() for v in voxels])
        table["region"] = regions
        agreement = region_agreement(np.concatenate(labels), regions, seed=seed)
        log.info("clusters vs ground-truth regions: %s", agreement)
    else:
        log.info("n/a: no ground-truth 'region' column in the voxel tables (only the simulator has one) — no ARI")
    write_frame(table, out_csv, "table")
    plot_clusters([v[["x", "y", "z"]].to_numpy() for v in voxels], labels, subjects, top_local, images, k=k,
                  agreement=agreement, dataset=dataset, out_png=out_png, out_pdf=out_pdf)
    return {"agreement": agreement, "sizes": np.bincount(np.concatenate(labels), minlength=k).tolist()}
