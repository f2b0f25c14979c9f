"""Per-subject summaries every encoder table shares: noise-ceiling-normalised
accuracy, retrieval, and the per-ROI companion table.

Inputs are the pipeline's files: scores CSVs (voxel, pearson, mse; from
nrf.experiments.scoring.score_predictions), voxel tables (nrf.experiments.voxels) and retrieval
CSVs (image_id, rank; nrf.retrieval.write_retrieval).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nrf.data import nsd_layout
from nrf.frames import read_frame
from nrf.noise_ceiling import normalised_accuracy
from nrf.retrieval import retrieval_summary

#: the atlases of the per-ROI companion table
ROI_TABLE_ATLASES = tuple(nsd_layout.ROI_ATLASES)


def _scores_and_voxels(score_csv, voxel_csv) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores, voxels = read_frame(score_csv, "scores"), read_frame(voxel_csv, "voxels")
    if len(scores) != len(voxels) or not np.array_equal(scores["voxel"], voxels["voxel"]):
        raise ValueError(
            f"{score_csv} ({len(scores)} voxels) and {voxel_csv} ({len(voxels)}) describe different voxels")
    return scores, voxels


def median_normalised(score_csv, voxel_csv) -> float:
    """Median over voxels (with a defined ceiling) of the NC-normalised accuracy, percent."""
    scores, voxels = _scores_and_voxels(score_csv, voxel_csv)
    acc = normalised_accuracy(scores["pearson"].to_numpy(), voxels["noise_ceiling"].to_numpy())
    return float(np.nanmedian(acc)) if np.isfinite(acc).any() else float("nan")


def retrieval_of(retrieval_csv) -> dict[str, float]:
    """top1, top5, mean_rank and chance levels of one subject's retrieval CSV."""
    return retrieval_summary(read_frame(retrieval_csv, "retrieval")["rank"].to_numpy())


def roi_medians(score_csvs: dict[str, list], voxel_csvs: list, subjects: list[str]) -> pd.DataFrame:
    """Median r per ROI of each atlas: rows subject, method, atlas, roi, n_voxels, median_r.

    ``score_csvs`` maps a method to its per-subject scores, in ``subjects``'
    order; ``voxel_csvs`` are the subjects' voxel tables. An ROI with no voxels
    in a subject is left out; an undefined r counts as 0.
    """
    rows = []
    for method, paths in score_csvs.items():
        for subject, score_csv, voxel_csv in zip(subjects, paths, voxel_csvs, strict=True):
            scores, voxels = _scores_and_voxels(score_csv, voxel_csv)
            r = np.nan_to_num(scores["pearson"].to_numpy(dtype=np.float64), nan=0.0)
            for atlas in ROI_TABLE_ATLASES:
                labels = voxels[atlas].to_numpy()
                for value, name in nsd_layout.ROI_ATLASES[atlas].items():
                    inside = labels == value
                    if inside.any():
                        rows.append({"subject": subject, "method": method, "atlas": atlas, "roi": name,
                                     "n_voxels": int(inside.sum()), "median_r": float(np.median(r[inside]))})
    return pd.DataFrame(rows, columns=["subject", "method", "atlas", "roi", "n_voxels", "median_r"])
