"""Figure 4's probe cells: several small trainings on one read of the data.

    run_shuffle_cell   Fig. 4a: NRF scratch on N images of one subject with
                       coordinates intact, shuffled globally, shuffled within
                       ROIs (nrf.perturbations)
    run_shuffle_fit_cell  the same, and how well each of its models (and the
                       linear baseline) fits the N training images: can the
                       model fit each voxel's identity from its coordinate?
                       (probes.shuffle_nrf; FIT_COLUMNS)
    run_transfer_cell  Fig. 4b/c: a base subject's full-data NRF finetuned on a
                       target's ROI-only voxels (EBA, V1) with aligned or
                       shifted coordinates

A cell is one (N, draw) of nrf.experiments.adaptation.Cell; the schedule is
nrf.experiments.adaptation.schedule (paper: validate on the test images every epoch,
patience 5, capped at the step budget; clean: the fixed step budget). Rows:
panel, subject, condition, n_train, draw, pearson, mse, steps, n_voxels.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.atomic import atomic_output
from nrf.data.prepared import load_prepared
from nrf.devices import resolve_device
from nrf.experiments.cell import Cell, finetune, schedule, score
from nrf.experiments.methods import SCRATCH
from nrf.frames import read_frame, write_frame
from nrf.perturbations import (
    ALIGNED,
    GLOBAL,
    INTACT,
    ROWS,
    SHIFTED,
    WITHIN_ROI,
    roi_groups,
    roi_mask,
    shift_inside,
    shuffle_global,
    shuffle_within_rois,
)
from nrf.training.loop import EncodingSplit, TrainConfig, predict
from nrf.training.registry import get_kind

logger = logging.getLogger(__name__)

#: the linear baseline's row in a fit table (the adaptation tables' label)
LINEAR = "Linear Regression"
#: the columns of a shuffle probe's fit table (:func:`run_shuffle_fit_cell`): per
#: (draw, model) the median over voxels of the Pearson r on the N training images
#: (train_pearson) and on the test images (test_pearson); model "NRF" (one row
#: per condition) or LINEAR (condition "voxel-wise"); width and fourier_scale
#: of the NRF (empty for the linear model)
FIT_COLUMNS = ("subject", "n_train", "draw", "model", "condition", "width", "fourier_scale", "train_pearson",
               "test_pearson", "steps")


def _subset(split: EncodingSplit | None, columns: np.ndarray) -> EncodingSplit | None:
    if split is None:
        return None
    return EncodingSplit(split.features, split.responses[:, columns])


def _scored(model, cell: Cell, coords, columns, history, config: TrainConfig) -> dict:
    pred = predict(model, cell.test.features, coords, device=config.device, precision=config.precision)
    out = score(pred, cell.test.responses[:, columns])
    return {"pearson": out["pearson"], "mse": out["mse"], "steps": int(history[-1]["step"]) if history else 0}


def run_shuffle_cell(
    prepared_path, features_path, n_train: int, draw: int, *, protocol: str, seed: int, train_options: dict,
    model_options: dict, scratch_steps: int, atlases, conditions=(INTACT, GLOBAL, WITHIN_ROI), device: str = "cpu",
    log: logging.Logger | None = None, intact_cell=None,
) -> pd.DataFrame:
    """Fig. 4a, one (N, draw): NRF scratch with coordinates intact, shuffled
    globally and shuffled within ROI groups (:func:`roi_groups` of ``atlases``).

    Every variant sees the same images and the same initial weights; only the
    coordinate paired with each voxel's responses differs (train and test alike).
    ``intact_cell``: the adaptation cell CSV of this subject, N and draw, whose
    NRF scratch is the intact arm (the same images, schedule, model and seed):
    its row is read instead of training that model a second time.
    """
    return _shuffle_cell(prepared_path, features_path, n_train, draw, protocol=protocol, seed=seed,
                         train_options=train_options, model_options=model_options, scratch_steps=scratch_steps,
                         atlases=atlases, conditions=conditions, device=device, log=log, intact_cell=intact_cell)[0]


def run_shuffle_fit_cell(
    prepared_path, features_path, n_train: int, draw: int, *, protocol: str, seed: int, train_options: dict,
    model_options: dict, linear_options: dict, scratch_steps: int, atlases, conditions=(INTACT, GLOBAL, WITHIN_ROI),
    device: str = "cpu", log: logging.Logger | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`run_shuffle_cell`'s rows (the same numbers), and its fit table
    (FIT_COLUMNS): each condition's NRF and the linear baseline of the adaptation
    cells (linear_options, the same images and validation) scored on the N
    training images they were fit to and on the test images.

    An NRF that fits the training images with intact coordinates about as well
    as the voxel-wise linear model has the capacity to tell voxels apart by
    their coordinates; one that fits far worse cannot, and then a shuffle
    probe measures its capacity rather than the value of the coordinates.
    """
    return _shuffle_cell(prepared_path, features_path, n_train, draw, protocol=protocol, seed=seed,
                         train_options=train_options, model_options=model_options, scratch_steps=scratch_steps,
                         atlases=atlases, conditions=conditions, device=device, log=log,
                         linear_options=linear_options)


def _shuffle_cell(prepared_path, features_path, n_train, draw, *, protocol, seed, train_options, model_options,
                  scratch_steps, atlases, conditions, device, log, linear_options=None, intact_cell=None):
    log = log or logger
    device = resolve_device(device)
    cell = Cell(prepared_path, features_path, n_train, draw, seed=seed, protocol=protocol)
    rois = load_prepared(prepared_path, splits=()).rois
    perms = {
        INTACT: np.arange(cell.n_voxels),
        GLOBAL: shuffle_global(cell.n_voxels, [seed, draw, 1]),
        WITHIN_ROI: shuffle_within_rois(roi_groups(rois, atlases), [seed, draw, 2]),
    }
    config = TrainConfig(**schedule(protocol, n_train, train_options, scratch_steps), seed=seed + draw, device=device)
    all_columns = np.arange(cell.n_voxels)
    rows, fits = [], []
    for condition in conditions:
        if condition == INTACT and intact_cell is not None:
            out = _cell_scratch(intact_cell, cell.subject, n_train, draw)
            rows.append({"panel": "a", "subject": cell.subject, "condition": condition, "n_train": n_train,
                         "draw": draw, **out, "n_voxels": cell.n_voxels})
            log.info("%s N=%d draw %d %s: r=%.4f after %d steps (the adaptation cell's NRF scratch, %s)",
                     cell.subject, n_train, draw, condition, out["pearson"], out["steps"], intact_cell)
            continue
        perm = perms[condition]
        coords = cell.coords[perm]
        model, history = get_kind("nrf").fit(cell.train, cell.val, coords, config, model_options=model_options,
                                             log=log, source=f"{cell.subject} {condition}")
        out = _scored(model, cell, coords, all_columns, history, config)
        rows.append({"panel": "a", "subject": cell.subject, "condition": condition, "n_train": n_train,
                     "draw": draw, **out, "n_voxels": cell.n_voxels})
        log.info("%s N=%d draw %d %s: r=%.4f after %d steps", cell.subject, n_train, draw, condition,
                 out["pearson"], out["steps"])
        if linear_options is not None:
            train_pred = predict(model, cell.train.features, coords, device=config.device,
                                 precision=config.precision)
            fits.append({"model": "NRF", "condition": condition, "width": model.config.width,
                         "fourier_scale": model.config.fourier_scale,
                         "train_pearson": score(train_pred, cell.train.responses)["pearson"],
                         "test_pearson": out["pearson"], "steps": out["steps"]})
    if linear_options is None:
        return pd.DataFrame(rows, columns=list(ROWS)), None
    # the adaptation cells' linear baseline on the same images and validation
    linear_cfg = TrainConfig(**linear_options, seed=seed + draw, device=device)
    model, history = get_kind("linear").fit(_embedding(cell.train), _embedding(cell.val), None, linear_cfg,
                                            model_options={}, log=log)
    fits.append({"model": LINEAR, "condition": "voxel-wise", "width": np.nan, "fourier_scale": np.nan,
                 "train_pearson": score(predict(model, cell.train.features, None, device=device,
                                                precision=linear_cfg.precision), cell.train.responses)["pearson"],
                 "test_pearson": score(predict(model, cell.test.features, None, device=device,
                                               precision=linear_cfg.precision), cell.test.responses)["pearson"],
                 "steps": int(history[-1]["step"]) if history else 0})
    for fit in fits:
        log.info("%s N=%d draw %d fit on the training images: %s %s r=%.4f (test r=%.4f)", cell.subject, n_train,
                 draw, fit["model"], fit["condition"], fit["train_pearson"], fit["test_pearson"])
    fit_table = pd.DataFrame([{"subject": cell.subject, "n_train": n_train, "draw": draw, **f} for f in fits],
                             columns=list(FIT_COLUMNS))
    return pd.DataFrame(rows, columns=list(ROWS)), fit_table


def _cell_scratch(cell_csv, subject: str, n_train: int, draw: int) -> dict:
    """pearson, mse and steps of the NRF scratch row of an adaptation cell CSV,
    checked to be that subject's, N's and draw's."""
    table = read_frame(cell_csv, "adaptation_cell")
    row = table[table["method"] == SCRATCH]
    if len(row) != 1 or (row["target"].iloc[0], int(row["n_train"].iloc[0]), int(row["draw"].iloc[0])) != (
            subject, n_train, draw):
        raise ValueError(f"{cell_csv}: no NRF scratch row of {subject} at N = {n_train}, draw {draw}")
    return {"pearson": float(row["pearson"].iloc[0]), "mse": float(row["mse"].iloc[0]),
            "steps": int(row["steps"].iloc[0])}


def _embedding(split: EncodingSplit | None) -> EncodingSplit | None:
    """The linear baseline's input: the embedding alone."""
    if split is None:
        return None
    return EncodingSplit({"embedding": split.features["embedding"]}, split.responses)


def run_transfer_cell(
    base_checkpoint, target_prepared, features_path, n_train: int, draw: int, *, protocol: str, seed: int,
    train_options: dict, finetune_steps: int, rois_wanted: dict, shift_mm: float, shift_direction,
    shift_seed: int, min_voxels: int = 5, device: str = "cpu", log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Fig. 4b/c, one (N, draw): the base NRF finetuned on the target's voxels
    of each ROI alone, at the target's own coordinates (aligned) and at those
    coordinates shifted inside the target's voxel hull (:func:`shift_inside`).

    rois_wanted : {name: (atlas, [labels])}, e.g. {"EBA": ("floc-bodies", [1])}
    The shift of each ROI is fixed by ``shift_seed`` (not by the draw), so
    every N and draw sees the same misalignment. Scored on the ROI's voxels.
    """
    log = log or logger
    device = resolve_device(device)
    cell = Cell(target_prepared, features_path, n_train, draw, seed=seed, protocol=protocol)
    rois = load_prepared(target_prepared, splits=()).rois
    config = TrainConfig(**schedule(protocol, n_train, train_options, finetune_steps), seed=seed + draw, device=device)
    rows = []
    for k, (name, (atlas, labels)) in enumerate(sorted(rois_wanted.items())):
        columns = np.flatnonzero(roi_mask(rois, atlas, labels))
        if len(columns) < min_voxels:
            raise ValueError(f"{target_prepared}: ROI {name} ({atlas} labels {list(labels)}) has "
                             f"{len(columns)} voxels, the probe needs at least {min_voxels}")
        aligned = cell.coords[columns]
        shifted, vector = shift_inside(aligned, cell.coords, shift_mm, shift_direction, [shift_seed, k])
        log.info("%s: %d voxels, shift %s mm (|%.1f| mm)", name, len(columns), np.round(vector, 1), shift_mm)
        train, val = _subset(cell.train, columns), _subset(cell.val, columns)
        for condition, coords in ((ALIGNED, aligned), (SHIFTED, shifted)):
            model, history = finetune(base_checkpoint, train, val, coords, config, log,
                                         f"{cell.subject} {name} {condition}")
            out = _scored(model, cell, coords, columns, history, config)
            rows.append({"panel": name, "subject": cell.subject, "condition": condition, "n_train": n_train,
                         "draw": draw, **out, "n_voxels": len(columns)})
            log.info("%s %s N=%d draw %d: r=%.4f after %d steps", name, condition, n_train, draw, out["pearson"],
                     out["steps"])
    return pd.DataFrame(rows, columns=list(ROWS))


def write_rows(table: pd.DataFrame, out_csv) -> None:
    """Write a probe CSV (nrf.perturbations.ROWS; read by nrf.reporting.figure4.read_rows)."""
    write_frame(table, out_csv, "probe_rows")


def write_fit_rows(table: pd.DataFrame, out_csv) -> None:
    """Write a shuffle probe's fit table (FIT_COLUMNS; read by nrf.reporting.claims)."""
    missing = [c for c in FIT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{out_csv}: the fit table lacks {missing}")
    with atomic_output(out_csv) as tmp:
        table[list(FIT_COLUMNS)].to_csv(tmp, index=False, float_format="%.6g")
