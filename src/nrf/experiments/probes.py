"""Figure 4's probe cells: several small trainings on one read of the data.

    run_shuffle_cell   Fig. 4a: NRF scratch on N images of one subject with
                       coordinates intact, shuffled globally, shuffled within
                       ROIs (nrf.perturbations)
    run_shuffle_fit_cell  the same, and how well each of its models (and the
                       linear baseline) fits the N training images: can the
                       model fit each voxel's identity from its coordinate?
                       (probes.shuffle_nrf; FIT_COLUMNS)
    run_transfer_cell  Fig. 4b/c: a base subject's full-data NRF finetuned on a
                       target's ROI-only voxels (EBA, V1: each ROI's label in
                       the whole brain mask, as the authors build it, so
                       inside and outside nsdgeneral) with aligned or shifted
                       coordinates

A cell is one (N, draw) of nrf.experiments.adaptation.Cell; the schedule is
nrf.experiments.adaptation.schedule (paper: validate on the test images every epoch,
patience 5, capped at the step budget; clean: the fixed step budget). Rows:
panel, subject, condition, n_train, draw, pearson, mse, steps, n_voxels.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.data.prepared import load_prepared
from nrf.data.roi_voxels import WholeBrainVoxels, parse_rois
from nrf.devices import resolve_device
from nrf.experiments.adaptation import read_cell_row
from nrf.experiments.cell import Cell, finetune, schedule, score
from nrf.experiments.methods import SCRATCH
from nrf.frames import write_frame
from nrf.perturbations import (
    ALIGNED,
    GLOBAL,
    INTACT,
    ROWS,
    SHIFTED,
    WITHIN_ROI,
    roi_groups,
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
    log: logging.Logger | None = None, intact_cell=None, min_steps: int = 0,
) -> pd.DataFrame:
    """Fig. 4a, one (N, draw): NRF scratch with coordinates intact, shuffled
    globally and shuffled within ROI groups (:func:`roi_groups` of ``atlases``).

    Every variant sees the same images and the same initial weights; only the
    coordinate paired with each voxel's responses differs (train and test alike).
    ``intact_cell``: the adaptation cell CSV of this subject, N and draw, whose
    NRF scratch is the intact arm (the same images, schedule, model and seed):
    its row is read instead of training that model a second time.
    ``scratch_steps`` caps each training, and none stops early before
    ``min_steps`` (probes.shuffle_max_steps / shuffle_min_steps).
    """
    return _shuffle_cell(prepared_path, features_path, n_train, draw, protocol=protocol, seed=seed,
                         train_options=train_options, model_options=model_options, scratch_steps=scratch_steps,
                         atlases=atlases, conditions=conditions, device=device, log=log, intact_cell=intact_cell,
                         min_steps=min_steps)[0]


def run_shuffle_fit_cell(
    prepared_path, features_path, n_train: int, draw: int, *, protocol: str, seed: int, train_options: dict,
    model_options: dict, linear_options: dict, scratch_steps: int, atlases, conditions=(INTACT, GLOBAL, WITHIN_ROI),
    device: str = "cpu", log: logging.Logger | None = None, min_steps: int = 0,
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
                         linear_options=linear_options, min_steps=min_steps)


def _shuffle_cell(prepared_path, features_path, n_train, draw, *, protocol, seed, train_options, model_options,
                  scratch_steps, atlases, conditions, device, log, linear_options=None, intact_cell=None, min_steps=0):
    log = log or logger
    device = resolve_device(device)
    cell = Cell(prepared_path, features_path, n_train, draw, seed=seed, protocol=protocol)
    rois = load_prepared(prepared_path, splits=()).rois
    perms = {
        INTACT: np.arange(cell.n_voxels),
        GLOBAL: shuffle_global(cell.n_voxels, [seed, draw, 1]),
        WITHIN_ROI: shuffle_within_rois(roi_groups(rois, atlases), [seed, draw, 2]),
    }
    config = TrainConfig(**schedule(protocol, n_train, train_options, scratch_steps, min_steps), seed=seed + draw,
                         device=device)
    all_columns = np.arange(cell.n_voxels)
    rows, fits = [], []
    for condition in conditions:
        if condition == INTACT and intact_cell is not None:
            out = read_cell_row(intact_cell, SCRATCH, cell.subject, n_train, draw)
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


def _embedding(split: EncodingSplit | None) -> EncodingSplit | None:
    """The linear baseline's input: the embedding alone."""
    if split is None:
        return None
    return EncodingSplit({"embedding": split.features["embedding"]}, split.responses)


def run_transfer_cell(
    base_checkpoint, target_prepared, features_path, n_train: int, draw: int, *, target_probe_rois, protocol: str,
    seed: int, train_options: dict, finetune_steps: int, rois_wanted: dict, shift_mm: float, shift_direction,
    shift_seed: int, min_voxels: int = 5, device: str = "cpu", log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Fig. 4b/c, one (N, draw): the base NRF finetuned on the target's voxels
    of each ROI alone, at the target's own coordinates (aligned) and at those
    coordinates shifted inside the target's voxel hull (:func:`shift_inside`).

    rois_wanted : {name: (atlas, [labels])}, e.g. {"EBA": ("floc-bodies", [1])}
        (or probes.rois' {name: {atlas, labels}})
    target_probe_rois : the target's ``probe_rois`` preparation, its ROI voxels
        outside nsdgeneral. An ROI is its label inside the brain mask, as the
        authors build it (nrf.data.roi_voxels): the prepared subject's voxels
        of that label (nsdgeneral) and these, in the authors' order. Finetuned
        on its voxels' responses to the N images and scored on them for the
        test images, as the authors train and evaluate on an ROI's list.
    The shift of each ROI is fixed by ``shift_seed`` (not by the draw), so
    every N and draw sees the same misalignment; the hull is that of all the
    target's voxels (nsdgeneral and the probe's ROI voxels outside it).
    """
    log = log or logger
    device = resolve_device(device)
    cell = Cell(target_prepared, features_path, n_train, draw, seed=seed, protocol=protocol)
    whole, train, test = _whole_brain(cell, target_prepared, target_probe_rois)
    val = test if cell.val is not None else None
    config = TrainConfig(**schedule(protocol, n_train, train_options, finetune_steps), seed=seed + draw, device=device)
    rows = []
    for k, (name, (atlas, labels)) in enumerate(sorted(parse_rois(rois_wanted).items())):
        columns = whole.region(atlas, labels)
        if len(columns) < min_voxels:
            raise ValueError(f"{target_prepared}: ROI {name} ({atlas} labels {list(labels)}) has "
                             f"{len(columns)} voxels, the probe needs at least {min_voxels}")
        aligned = whole.coords[columns]
        shifted, vector = shift_inside(aligned, whole.coords, shift_mm, shift_direction, [shift_seed, k])
        log.info("%s: %d voxels (%d outside nsdgeneral), shift %s mm (|%.1f| mm)", name, len(columns),
                 int((columns >= whole.n_inside).sum()), np.round(vector, 1), shift_mm)
        roi_train, roi_val = _subset(train, columns), _subset(val, columns)
        roi_test = _subset(test, columns)
        for condition, coords in ((ALIGNED, aligned), (SHIFTED, shifted)):
            model, history = finetune(base_checkpoint, roi_train, roi_val, coords, config, log,
                                      f"{cell.subject} {name} {condition}")
            pred = predict(model, roi_test.features, coords, device=config.device, precision=config.precision)
            out = score(pred, roi_test.responses)
            steps = int(history[-1]["step"]) if history else 0
            rows.append({"panel": name, "subject": cell.subject, "condition": condition, "n_train": n_train,
                         "draw": draw, "pearson": out["pearson"], "mse": out["mse"], "steps": steps,
                         "n_voxels": len(columns)})
            log.info("%s %s N=%d draw %d: r=%.4f after %d steps", name, condition, n_train, draw, out["pearson"],
                     steps)
    return pd.DataFrame(rows, columns=list(ROWS))


def _whole_brain(cell: Cell, target_prepared, target_probe_rois):
    """The target's voxels on the whole brain mask (:class:`WholeBrainVoxels`) and the
    cell's train and test splits at them: the prepared responses, then those of the
    probe's ROI voxels outside nsdgeneral for the same images."""
    outside = load_prepared(target_probe_rois, splits=("train", "test"))
    whole = WholeBrainVoxels.join(load_prepared(target_prepared, splits=()), outside, source=str(target_probe_rois))
    if not (np.array_equal(outside.train.image_ids[cell.rows], cell.train_ids)
            and np.array_equal(outside.test.image_ids, cell.test_ids)):
        raise ValueError(f"{target_probe_rois}: its images differ from {target_prepared}'s: prepare both again")
    train = EncodingSplit(cell.train.features, np.hstack([cell.train.responses, outside.train.responses[cell.rows]]))
    test = EncodingSplit(cell.test.features, np.hstack([cell.test.responses, outside.test.responses]))
    return whole, train, test


def write_rows(table: pd.DataFrame, out_csv) -> None:
    """Write a probe CSV (nrf.perturbations.ROWS; read by nrf.reporting.figure4.read_rows)."""
    write_frame(table, out_csv, "probe_rows")


def write_fit_rows(table: pd.DataFrame, out_csv) -> None:
    """Write a shuffle probe's fit table (FIT_COLUMNS), checksummed; read by nrf.reporting.claims."""
    missing = [c for c in FIT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{out_csv}: the fit table lacks {missing}")
    write_frame(table[list(FIT_COLUMNS)], out_csv, "shuffle_fit")
