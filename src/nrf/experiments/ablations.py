"""Ablations (paper A.5, Tables 4–6): what to finetune, how deep, how wide.

    run_finetune_strategies  Table 4: a base NRF finetuned on a target's N
                             images with every parameter, the image block
                             (mergers) only, or the predictor MLP only
                             (TrainConfig.trainable), over several draws
    train_architecture       Tables 5–6: an NRF of a given depth and width
                             trained on a subject's full training set, and
                             its per-voxel test scores

Both reuse the pipeline's training code (nrf.training.registry, nrf.training.encoders)
and the adaptation cell and schedules (nrf.experiments.adaptation).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from nrf.checks import write_json
from nrf.devices import resolve_device
from nrf.experiments.adaptation import read_cell_row
from nrf.experiments.cell import Cell, finetune, schedule, score
from nrf.experiments.methods import base_label
from nrf.experiments.scoring import score_predictions
from nrf.frames import write_frame
from nrf.training.encoders import predict_test, train_encoder
from nrf.training.loop import TrainConfig, predict

logger = logging.getLogger(__name__)

#: Table 4's rows (the paper's labels) and the TrainConfig.trainable each uses
STRATEGIES = {"finetune both": "all", "finetune image block only": "image_block", "finetune MLP only": "predictor"}


def run_finetune_strategies(
    base_checkpoint, target_prepared, features_path, n_train: int, draws: int, *, protocol: str, seed: int,
    train_options: dict, finetune_steps: int, device: str = "cpu", log: logging.Logger | None = None,
    both_cells: dict[int, str] | None = None, base: str | None = None,
) -> pd.DataFrame:
    """Table 4: one row per (strategy, draw): method, n_train, draw, pearson, mse, steps.

    Each draw is the adaptation cell's draw (nrf.experiments.cell.draw_rows), so the
    "finetune both" rows are the adaptation experiment's finetune of ``base`` to
    this target: with ``both_cells`` ({draw: that cell's CSV}) they are read from
    those cells instead of trained a second time (same images, schedule, seed).
    """
    log = log or logger
    device = resolve_device(device)
    both_cells = both_cells or {}
    rows = []
    for draw in range(draws):
        cell = Cell(target_prepared, features_path, n_train, draw, seed=seed, protocol=protocol)
        for method, trainable in STRATEGIES.items():
            if trainable == "all" and draw in both_cells:
                out = read_cell_row(both_cells[draw], base_label(base, cell.subject), cell.subject, n_train, draw)
                rows.append({"method": method, "subject": cell.subject, "n_train": n_train, "draw": draw, **out})
                log.info("%s N=%d draw %d %s: r=%.4f after %d steps (the adaptation cell's finetune of %s, %s)",
                         cell.subject, n_train, draw, method, out["pearson"], out["steps"], base, both_cells[draw])
                continue
            options = dict(schedule(protocol, n_train, train_options, finetune_steps), trainable=trainable)
            config = TrainConfig(**options, seed=seed + draw, device=device)
            model, history = finetune(base_checkpoint, cell.train, cell.val, cell.coords, config, log,
                                         f"{cell.subject} draw {draw}")
            out = score(predict(model, cell.test.features, cell.coords, device=device, precision=config.precision),
                        cell.test.responses)
            steps = int(history[-1]["step"]) if history else 0
            rows.append({"method": method, "subject": cell.subject, "n_train": n_train, "draw": draw,
                         "pearson": out["pearson"], "mse": out["mse"], "steps": steps})
            log.info("%s N=%d draw %d %s: r=%.4f after %d steps", cell.subject, n_train, draw, method,
                     out["pearson"], steps)
    return pd.DataFrame(rows)


def write_strategy_rows(rows: pd.DataFrame, out_csv) -> None:
    """Write :func:`run_finetune_strategies`' rows (read by nrf.reporting.ablation_tables.write_table4)."""
    write_frame(rows, out_csv, "finetune_strategies")


def capped(train_options: dict, max_steps: int | None, min_steps: int | None = None) -> dict:
    """The pipeline's training options with ``max_steps`` steps at most and no
    early stop before ``min_steps`` (ablations.max_steps / min_steps, in place
    of train's, above or below them; min_steps lowered to the cap); None keeps
    the pipeline's own value."""
    options = dict(train_options)
    if min_steps is not None:
        options["min_steps"] = int(min_steps)
    if max_steps is not None:
        options["max_steps"] = int(max_steps)
    if "max_steps" in options and "min_steps" in options:
        options["min_steps"] = min(options["min_steps"], options["max_steps"])
    return options


def training_summary(history: list[dict], max_steps: int) -> dict:
    """How a training ended, from its history: steps run, the step of the best
    validation median r, whether early stopping ended it, and whether it was
    still improving when the step cap did (its best record was its last)."""
    steps = int(history[-1]["step"]) if history else 0
    scored = [h for h in history if "val_median_r" in h]
    best = max(scored, key=lambda h: h["val_median_r"]) if scored else None
    return {
        "steps": steps, "max_steps": int(max_steps), "best_step": None if best is None else int(best["step"]),
        "stopped_early": steps < max_steps,
        "improving_at_cap": steps >= max_steps and best is not None and best is scored[-1],
        "val_median_r": [[int(h["step"]), float(h["val_median_r"])] for h in scored],
    }


def train_architecture(
    prepared_path, features_path, out_checkpoint, out_scores, *, model_options: dict, train_options: dict,
    seed: int, device: str = "cpu", log: logging.Logger | None = None, out_training=None,
) -> dict:
    """Train an NRF of the given sizes on the full training set and score it on
    the test images, through the pipeline's own steps: train_encoder (the same
    schedule as the pipeline's own NRF), predict_test and score_predictions.

    Writes the checkpoint, the per-voxel scores CSV (the format of
    results/{dataset}/scores/) and, given ``out_training``, a JSON
    :func:`training_summary` (the tables say which rows the step cap cut off
    while still improving). Returns :func:`nrf.metrics.summarise` and the steps run.
    """
    log = log or logger
    device = resolve_device(device)
    ckpt = train_encoder("nrf", prepared_path, features_path, out_checkpoint, model_options=model_options,
                         train_options=train_options, seed=seed, device=device, log=log)
    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "predictions.hdf5"
        predict_test(out_checkpoint, prepared_path, features_path, predictions, device=device, log=log)
        summary = score_predictions(predictions, prepared_path, out_scores, log=log)
    training = training_summary(ckpt["history"], train_options["max_steps"])
    if out_training is not None:
        write_json(out_training, training)
    log.info("depth %d width %d: median r %.4f after %d steps", ckpt["model_config"]["depth"],
             ckpt["model_config"]["width"], summary["median_r"], training["steps"])
    return dict(summary, steps=training["steps"])
