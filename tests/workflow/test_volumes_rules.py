"""The volume rules on the tiny simulated config: NRF volumes on MNI grids, the
faces-vs-places contrast (fig_contrast), table_resolution and fig_volume, with logs and benchmarks."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tiny_workflow import TINY

from nrf.frames import read_frame

pytestmark = pytest.mark.workflow
VOLUMES = TINY["volumes"]

TARGETS = ["results/simulated/tables/table_resolution.csv", "results/simulated/figures/fig_volume.png",
           "results/simulated/volumes/subj01/face_vs_place.png"]
RULES = ("volumes", "build_fig_contrast", "build_table_resolution", "build_fig_volume", "query_images")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run  # the shared tiny run of `all` (conftest.py) builds every volume target


def test_volumes_on_mni_grids(run):
    for res in VOLUMES["figure_resolutions_mm"]:
        path = run / f"results/simulated/volumes/subj01/test_{res:g}mm.nii.gz"
        img = nib.load(path)
        assert img.shape[3] == VOLUMES["test_images"] and img.get_data_dtype() == np.float32
        np.testing.assert_allclose(nib.affines.voxel_sizes(img.affine), res)
        assert int(img.header["sform_code"]) == 4 == int(img.header["qform_code"])
        side = json.loads(Path(str(path) + ".json").read_text())
        assert side["extractor"] == "filterbank" and side["mask"] == "training" and side["subject"] == "subj01"
        assert np.count_nonzero(np.asarray(img.dataobj[..., 0])) == side["n_points"] > 1000


def test_table_resolution_rows(run):
    table = read_frame(run / "results/simulated/tables/table_resolution.csv", "table")
    got = set(zip(table["model"], table["method"]))
    assert {("NRF", "queried"), ("NRF", "trilinear"), ("Linear", "nearest"), ("Linear", "trilinear"),
            ("Truth (noiseless)", "trilinear")} <= got
    assert np.isfinite(table["r_mean"]).all() and (table["n_points"] > 100).all()
    assert (table["n_points"] <= VOLUMES["resolution_max_points"]).all()
    truth = table[table["model"] == "Truth (noiseless)"].set_index("method")["r_mean"]
    assert truth["trilinear"] > 0.8  # the field is smooth on the voxels' scale
    assert "Resolution" in (run / "results/simulated/tables/table_resolution.md").read_text()


def test_contrast_and_figures(run):
    summary = json.loads((run / "results/simulated/volumes/subj01/face_vs_place.json").read_text())
    assert summary["labels"] == ["faces", "places"] and len(summary["images_a"]) >= 2
    assert summary["simulator_region_at_max"] in {"low_level", "face", "body", "place", "object"}
    for png in TARGETS[1:]:
        assert (run / png).stat().st_size > 20_000
    assert (run / "results/simulated/figures/fig_volume.pdf").stat().st_size > 1_000
    for rule in RULES:
        assert list((run / "logs" / rule).glob("*.log")), rule
        assert list((run / "benchmarks/runs" / rule).glob("*.tsv")), rule
