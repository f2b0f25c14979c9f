"""Cross-subject adaptation (paper §5.2): finetune other subjects' NRFs on a
target's few images, combine them, and compare with training from scratch.

One *cell* is (target subject, N training images, draw). Every method of a
cell sees the same N images (the draw) and is scored on the same test images:

    NRF finetune base subjXX->subjYY   each base NRF finetuned end to end
                                       (mergers and MLP) on the N images at
                                       the target's own MNI coordinates
    NRF finetune average               the mean of the finetuned bases
    NRF finetune ensemble              the paper's voxelwise least squares
                                       with bias (eq. 1–2) on the N images
    NRF finetune ensemble (held-out λ) ours: the same, shrunk toward the
                                       average by cross-validation (nrf.ensemble)
    NRF scratch                        a new NRF trained on the N images
    Linear Regression                  the linear baseline on the N images

Schedules (:func:`nrf.experiments.cell.schedule`): under ``paper`` every model is validated on the
test images once per epoch (ceil(N / batch) steps; one step at N = 20 with the
paper's batch of 32) with patience 5, keeping the best state, as the authors
do. With N = 20 that means stopping after a handful of steps, on the very
images it is scored on. Under ``clean`` a fixed budget of steps from config
is used and no test image is involved.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5
from nrf.devices import resolve_device
from nrf.ensemble import apply_ensemble, fit_ensemble, fit_shrunk_ensemble
from nrf.experiments.cell import Cell, finetune, schedule, score
from nrf.experiments.methods import (
    AVERAGE,
    ENSEMBLE,
    HELDOUT,
    LINEAR,
    SCRATCH,
    base_label,
)
from nrf.frames import read_frame, write_frame
from nrf.training.loop import EncodingSplit, TrainConfig, predict
from nrf.training.registry import get_kind

logger = logging.getLogger(__name__)

def run_cell(
    target_prepared,
    features_path,
    base_checkpoints: dict,
    n_train: int,
    draw: int,
    *,
    protocol: str,
    seed: int,
    train_options: dict,
    model_options: dict,
    linear_options: dict,
    finetune_steps: int,
    scratch_steps: int,
    device: str = "cpu",
    log: logging.Logger | None = None,
) -> tuple[dict[str, dict], dict]:
    """Every method of one adaptation cell.

    Returns ({method: {"predictions", "pearson", "mse", "r", "steps"}}, the
    cell's description for :func:`write_cell`: target, n_train, draw,
    protocol, test_ids).

    base_checkpoints : {base subject: full-data NRF checkpoint}
    finetune_steps, scratch_steps : the clean protocol's fixed budgets, and
        the paper protocol's caps (it stops earlier on the test images)
    """
    log = log or logger
    device = resolve_device(device)
    cell = Cell(target_prepared, features_path, n_train, draw, seed=seed, protocol=protocol)
    target = cell.subject
    log.info("%s: N=%d draw %d (%s protocol), %d test images, %d voxels",
             target, n_train, draw, protocol, len(cell.test_ids), cell.n_voxels)
    results: dict[str, dict] = {}

    def record(method, model, history, coords, config):
        pred = predict(model, cell.test.features, coords, device=device, precision=config.precision)
        out = score(pred, cell.test.responses)
        out.update(predictions=pred, steps=int(history[-1]["step"]) if history else 0)
        results[method] = out
        log.info("%s N=%d draw %d: %s r=%.4f after %d steps", target, n_train, draw, method, out["pearson"],
                 out["steps"])
        return out

    finetune_cfg = TrainConfig(**schedule(protocol, n_train, train_options, finetune_steps),
                               seed=seed + draw, device=device)
    train_preds, test_preds = [], []
    for base, ckpt in sorted(base_checkpoints.items()):
        model, history = finetune(ckpt, cell.train, cell.val, cell.coords, finetune_cfg, log,
                                  f"{target} draw of {n_train} images")
        record(base_label(base, target), model, history, cell.coords, finetune_cfg)
        train_preds.append(predict(model, cell.train.features, cell.coords, device=device,
                                   precision=finetune_cfg.precision))
        test_preds.append(results[base_label(base, target)]["predictions"])
    train_preds, test_preds = np.stack(train_preds), np.stack(test_preds)

    def combined(method, pred):
        out = score(pred, cell.test.responses)
        out.update(predictions=pred, steps=0)
        results[method] = out
        log.info("%s N=%d draw %d: %s r=%.4f", target, n_train, draw, method, out["pearson"])

    combined(AVERAGE, test_preds.mean(axis=0).astype(np.float32))
    w, b = fit_ensemble(train_preds, cell.train.responses)
    combined(ENSEMBLE, apply_ensemble(test_preds, w, b))
    w, b, lam = fit_shrunk_ensemble(train_preds, cell.train.responses, seed=seed + draw)
    combined(HELDOUT, apply_ensemble(test_preds, w, b))
    results[HELDOUT]["lambda"] = lam
    log.info("held-out ensemble: λ = %g chosen by cross-validation on the %d training images", lam, n_train)

    scratch_cfg = TrainConfig(**schedule(protocol, n_train, train_options, scratch_steps),
                              seed=seed + draw, device=device)
    model, history = get_kind("nrf").fit(cell.train, cell.val, cell.coords, scratch_cfg,
                                         model_options=model_options, log=log)
    record(SCRATCH, model, history, cell.coords, scratch_cfg)

    linear_cfg = TrainConfig(**linear_options, seed=seed + draw, device=device)
    emb = lambda split: None if split is None else EncodingSplit(  # noqa: E731
        {"embedding": split.features["embedding"]}, split.responses)
    model, history = get_kind("linear").fit(emb(cell.train), emb(cell.val), None, linear_cfg, model_options={}, log=log)
    record(LINEAR, model, history, None, linear_cfg)
    meta = dict(target=target, n_train=n_train, draw=draw, protocol=protocol, test_ids=cell.test_ids)
    return results, meta


def write_cell(results: dict, *, target: str, n_train: int, draw: int, protocol: str, test_ids, out_hdf5, out_csv):
    """Predictions and per-voxel r of every method (HDF5, one group per method)
    and the tidy summary (CSV: target, n_train, draw, protocol, method, pearson,
    mse, steps)."""
    with atomic_output(out_hdf5) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "image_ids", np.asarray(test_ids, dtype=np.int64))
        f.attrs.update(target=target, n_train=int(n_train), draw=int(draw), protocol=protocol)
        for method, res in results.items():
            g = f.create_group(method.replace("/", "_"))
            g.attrs["method"] = method
            add_dataset(g, "predictions", res["predictions"].astype(np.float32))
            add_dataset(g, "pearson", res["r"].astype(np.float32))
    rows = [
        {"target": target, "n_train": int(n_train), "draw": int(draw), "protocol": protocol, "method": m,
         "pearson": r["pearson"], "mse": r["mse"], "steps": r["steps"], "lambda": r.get("lambda", np.nan)}
        for m, r in results.items()
    ]
    write_frame(pd.DataFrame(rows), out_csv, "adaptation_cell")


def read_cell_row(cell_csv, method: str, target: str, n_train: int, draw: int) -> dict:
    """pearson, mse and steps of one method's row of a cell CSV (:func:`write_cell`),
    checked to be that target's, N's and draw's: what another experiment that
    repeats the same training reads instead of training it again."""
    table = read_frame(cell_csv, "adaptation_cell")
    row = table[table["method"] == method]
    if len(row) != 1 or (row["target"].iloc[0], int(row["n_train"].iloc[0]), int(row["draw"].iloc[0])) != (
            target, n_train, draw):
        raise ValueError(f"{cell_csv}: no {method!r} row of {target} at N = {n_train}, draw {draw}")
    return {"pearson": float(row["pearson"].iloc[0]), "mse": float(row["mse"].iloc[0]),
            "steps": int(row["steps"].iloc[0])}


def read_cell(path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """A cell file written by :func:`write_cell`, whole: (attrs with ``image_ids``,
    {method: {"predictions", "pearson"}}). A damaged file raises naming it
    (nrf.checks.open_hdf5); figures that need one method's r read the file themselves."""
    with open_hdf5(path, what="adaptation cell file") as f:
        meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        meta["image_ids"] = f["image_ids"][()]
        methods = {str(g.attrs["method"]): {"predictions": g["predictions"][()], "pearson": g["pearson"][()]}
                   for name, g in f.items() if name != "image_ids"}
    return meta, methods
