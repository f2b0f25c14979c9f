"""The volume rules on the tiny simulated config: NRF volumes on MNI grids, the
faces-vs-places contrast, table_resolution and fig_volume, with logs and benchmarks."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow

# test_pipeline.py's TINY config, trained on one subject only
TINY = {
    "dataset": "simulated",
    "seed": 3,
    "subjects": ["subj01"],
    "shots": [20],
    "simulation": {"n_train_images": 60, "n_test_images": 20, "repeats": 3, "trials_per_session": 60, "image_size": 32},
    "presets": {
        "simulated": {
            "features": {"extractor": "filterbank"},
            "nrf": {"merger_token_dim": 4, "merger_dim": 16, "fourier_scale": 8.0, "depth": 2, "width": 32},
            "train": {"batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3, "max_steps": 40, "min_steps": 0,
                      "eval_every": 20, "patience": 2},
            "linear": {"epochs": 5, "lr": 3.0e-3, "batch_images": 16},
        }
    },
}
TARGETS = ["results/simulated/tables/table_resolution.csv", "results/simulated/figures/fig_volume.png",
           "results/simulated/volumes/subj01/face_vs_place.png"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("volumes")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *TARGETS]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_volumes_on_mni_grids(run):
    for res in (1.8, 1.0):
        path = run / f"results/simulated/volumes/subj01/test_{res:g}mm.nii.gz"
        img = nib.load(path)
        assert img.shape[3] == 3 and img.get_data_dtype() == np.float32
        np.testing.assert_allclose(nib.affines.voxel_sizes(img.affine), res)
        assert int(img.header["sform_code"]) == 4 == int(img.header["qform_code"])
        side = json.loads(Path(str(path) + ".json").read_text())
        assert side["extractor"] == "filterbank" and side["mask"] == "training" and side["subject"] == "subj01"
        assert np.count_nonzero(np.asarray(img.dataobj[..., 0])) == side["n_points"] > 1000


def test_table_resolution_rows(run):
    table = pd.read_csv(run / "results/simulated/tables/table_resolution.csv")
    got = set(zip(table["model"], table["method"]))
    assert {("NRF", "queried"), ("NRF", "trilinear"), ("Linear", "nearest"), ("Linear", "trilinear"),
            ("Truth (noiseless)", "trilinear")} <= got
    assert np.isfinite(table["r_mean"]).all() and (table["n_points"] > 100).all()
    truth = table[table["model"] == "Truth (noiseless)"].set_index("method")["r_mean"]
    assert truth["trilinear"] > 0.8  # the field is smooth on the voxels' scale
    assert "Resolution" in (run / "results/simulated/tables/table_resolution.md").read_text()


def test_contrast_and_figures(run):
    summary = json.loads((run / "results/simulated/volumes/subj01/face_vs_place.json").read_text())
    assert summary["labels"] == ["faces", "places"] and len(summary["images_a"]) >= 2
    assert summary["simulator_region_at_max"] in {"low_level", "face", "body", "place", "object"}
    for png in TARGETS[1:]:
        assert (run / png).stat().st_size > 20_000
    for rule in ("volumes", "contrast", "table_resolution", "fig_volume", "query_images"):
        assert list((run / "logs" / rule).glob("*.log")), rule
        assert list((run / "benchmarks/runs" / rule).glob("*.tsv")), rule
