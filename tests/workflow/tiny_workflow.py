"""The tiny simulated config the workflow tests share, and how they run Snakemake.

The workflow reads its embedded config.yaml from its own folder first and
--configfile merges over it, key by key: what TINY leaves out comes from the
repo's config.yaml (its simulated preset: nrf.fourier_seed 0, mem_mb, ...;
ablations.max_steps, capped by TINY's train.max_steps), not from the schema's
defaults."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "dataset": "simulated",
    "seed": 3,
    "subjects": ["subj01", "subj02"],
    "shots": [20],
    "simulation": {"n_train_images": 60, "n_test_images": 20, "repeats": 3, "trials_per_session": 60, "image_size": 32},
    "ablations": {"depths": [2, 3], "widths": [16, 32]},
    # not the default's grids and counts, so the rules are seen to take them from config
    "volumes": {"test_images": 2, "figure_resolutions_mm": [1.8, 1.2], "resolution_max_points": 2000},
    "presets": {
        "simulated": {
            "features": {"extractor": "filterbank"},
            "nrf": {"merger_token_dim": 4, "merger_dim": 16, "fourier_scale": 8.0, "depth": 2, "width": 32},
            "train": {"batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3, "max_steps": 40, "min_steps": 0,
                      "eval_every": 20, "patience": 2},
            "linear": {"epochs": 5, "lr": 3.0e-3, "batch_images": 16},
            "adaptation": {"draws": 2, "finetune_steps": 20, "scratch_steps": 30, "figure_shots": 20},
            "fwrf": {"n_top": 8, "lambdas": [10.0, 1000.0]},
            "universal": {"channels": 4, "embedding_dim": 8, "batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3,
                          "max_steps": 20, "min_steps": 0, "eval_every": 10, "patience": 2,
                          "transfer_max_steps": 10, "transfer_draws": 1, "clusters": 3},
        }
    },
    "decoder": {"image_size": 16, "figure_images": [0, 1, 2]},
}


def run_snakemake(workdir, *args, timeout=1800):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
