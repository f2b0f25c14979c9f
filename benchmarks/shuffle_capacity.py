"""Which shuffle-probe NRF can learn each voxel's identity from its coordinate (issue 23)?

Trains the shuffle probe's cell (nrf.experiments.probes.run_shuffle_fit_cell: intact, globally and
within-ROI shuffled coordinates, and the voxel-wise linear baseline) for one subject, N and draw, at
the NRF sizes and schedule given, on the data of a finished claims run, and prints its fit table.
An NRF on globally shuffled coordinates that predicts the test images as well as the voxel-wise
linear model has told the voxels apart by their coordinates alone.

    python benchmarks/shuffle_capacity.py <claims run>/results/simulated --fourier-scale 64 \
        --max-steps 12000 --min-steps 600 --n 20,200,800

``--fixed-steps K`` trains one NRF (``--condition``) for exactly K steps, keeps the final state and
traces its fit to the training images (10 points), to see what it reaches without early stopping.
Results: benchmarks/shuffle_capacity.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
import yaml
from snakemake.utils import update_config

REPO = Path(__file__).resolve().parents[1]


def _config(configfile: Path) -> dict:
    from nrf.config import validate_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load(configfile.read_text()))
    return validate_config(config, REPO / "schemas" / "config.schema.yaml")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a claims run's results/simulated folder (prepared, features)")
    ap.add_argument("--configfile", type=Path, default=REPO / "configs" / "claims.yaml")
    ap.add_argument("--subject", default="subj01")
    ap.add_argument("--n", default="800", help="comma-separated N")
    ap.add_argument("--draw", type=int, default=0)
    ap.add_argument("--width", type=int)
    ap.add_argument("--fourier-scale", type=float)
    ap.add_argument("--max-steps", type=int, default=12000)
    ap.add_argument("--min-steps", type=int, default=0)
    ap.add_argument("--fixed-steps", type=int, help="one NRF, exactly this many steps, final state kept")
    ap.add_argument("--condition", choices=("intact", "global"), default="global")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    from nrf.experiments.probes import run_shuffle_fit_cell

    config = _config(args.configfile)
    sizes = {k: v for k, v in (("width", args.width), ("fourier_scale", args.fourier_scale)) if v is not None}
    model_options = {**config["nrf"], **sizes}
    prepared = args.results / "prepared" / f"{args.subject}.hdf5"
    features = args.results / "features" / "filterbank.hdf5"
    for n in map(int, args.n.split(",")):
        start = time.perf_counter()
        if args.fixed_steps:
            line = _fixed(prepared, features, n, args, config, model_options)
            print(f"N = {n}, {time.perf_counter() - start:.0f} s: {line}", flush=True)
            continue
        _, fit = run_shuffle_fit_cell(prepared, features, n, args.draw, protocol=config["protocol"],
                                      seed=config["seed"], train_options=config["train"],
                                      model_options=model_options, linear_options=config["linear"],
                                      scratch_steps=args.max_steps, min_steps=args.min_steps,
                                      atlases=config["probes"]["shuffle_atlases"], device="cpu")
        print(f"N = {n}, draw {args.draw}, {sizes}, cap {args.max_steps}, min {args.min_steps}: "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        print(fit[["model", "condition", "train_pearson", "test_pearson", "steps"]].to_string(index=False), flush=True)
    return 0


def _fixed(prepared, features, n, args, config, model_options) -> str:
    """One NRF for exactly ``args.fixed_steps`` steps; the training images stand in as the validation
    set, so its history is the fit to them (the final state is kept, nothing stops early)."""
    from nrf.experiments.cell import Cell, score
    from nrf.perturbations import shuffle_global
    from nrf.training.loop import TrainConfig, predict
    from nrf.training.registry import get_kind

    cell = Cell(prepared, features, n, args.draw, seed=config["seed"], protocol=config["protocol"])
    coords = cell.coords
    if args.condition == "global":  # the probe's own permutation of this draw
        coords = coords[shuffle_global(cell.n_voxels, [config["seed"], args.draw, 1])]
    train = dict(config["train"], max_steps=args.fixed_steps, patience=None, min_steps=0,
                 eval_every=max(args.fixed_steps // 10, 1))
    cfg = TrainConfig(**train, seed=config["seed"] + args.draw, device="cpu")
    model, history = get_kind("nrf").fit(cell.train, cell.train, coords, cfg, model_options=model_options,
                                         log=logging.getLogger("shuffle_capacity"), source=args.condition)
    test = score(predict(model, cell.test.features, coords, device="cpu", precision=cfg.precision),
                 cell.test.responses)["pearson"]
    curve = " ".join(f"{h['step']}: {h['val_median_r']:.3f}" for h in history if "val_median_r" in h)
    return f"{args.condition}, test r {test:.3f}; training-set fit by step {curve}"


if __name__ == "__main__":
    sys.exit(main())
