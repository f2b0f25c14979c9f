"""Figure 4b/c's probe on whole-brain regions: a tiny simulated run whose EBA and V1
reach outside nsdgeneral; the probe finetunes and scores on every voxel of each label
inside the brain mask (nrf.data.roi_voxels), as the authors' ROI lists hold."""

import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from nrf.config import validate_config
from nrf.data import nsd_layout, nsd_tree
from nrf.data.prepare import prepare_subject
from nrf.data.simulate import simulate_nsd_tree
from nrf.experiments.probes import run_transfer_cell
from nrf.features.pipeline import extract_seen_images
from nrf.perturbations import ALIGNED, SHIFTED
from nrf.training.encoders import train_encoder

REPO = Path(__file__).resolve().parents[2]

ROIS = {"EBA": ("floc-bodies", [1]), "V1": ("prf-visualrois", [1, 2])}
SESSIONS = [1, 2, 3, 4]
TINY_NRF = {"merger_token_dim": 4, "merger_dim": 16, "fourier_scale": 8.0, "depth": 2, "width": 32}
TINY_TRAIN = {"batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3, "max_steps": 20, "min_steps": 0, "eval_every": 10,
              "patience": 2}
log = logging.getLogger("test.probe_regions")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    tmp = tmp_path_factory.mktemp("probe_regions")
    root = tmp / "tree"
    simulate_nsd_tree(root, subjects=["subj01", "subj07"], n_train_images=60, n_test_images=20, repeats=3,
                      trials_per_session=60, image_size=32, seed=5)
    paths = {s: tmp / f"{s}.hdf5" for s in ("subj01", "subj07")}
    for s, path in paths.items():
        prepare_subject(root, s, sessions=SESSIONS, protocol="paper", out_path=path)
    paths["rois"] = tmp / "subj07.probe_rois.hdf5"
    prepare_subject(root, "subj07", sessions=SESSIONS, protocol="paper", voxel_set="probe_rois", probe_rois=ROIS,
                    out_path=paths["rois"])
    paths["features"] = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"], stimuli_path=root / nsd_layout.STIMULI,
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={"subj01": 4, "subj07": 4},
                        trials_per_session=60, out_path=paths["features"], device="cpu", log=log)
    paths["base"] = tmp / "base.pt"
    train = {**config["train"], **TINY_TRAIN}
    train_encoder("nrf", paths["subj01"], paths["features"], paths["base"], model_options={**config["nrf"], **TINY_NRF},
                  train_options=train, seed=0, device="cpu", log=log)
    return root, paths, train


def _transfer(paths, train, rois_file):
    return run_transfer_cell(paths["base"], paths["subj07"], paths["features"], 20, 0, target_probe_rois=rois_file,
                             protocol="paper", seed=0, train_options=train, finetune_steps=10, rois_wanted=ROIS,
                             shift_mm=20.0, shift_direction="random", shift_seed=1000, log=log)


def test_probe_scores_every_voxel_of_the_label_inside_the_brain_mask(run):
    root, paths, train = run
    rows = _transfer(paths, train, paths["rois"])
    brainmask = nsd_tree.load_volume(root, nsd_layout.brainmask("subj07"))[0] > 0
    nsdgeneral = nsd_tree.load_volume(root, nsd_layout.roi("subj07", "nsdgeneral"))[0] > 0
    for name, (atlas, labels) in ROIS.items():
        region = np.isin(nsd_tree.load_volume(root, nsd_layout.roi("subj07", atlas))[0], labels) & brainmask
        assert (region & ~nsdgeneral).sum() > 0, name  # what an nsdgeneral-only region dropped
        got = rows[rows["panel"] == name]
        assert set(got["condition"]) == {ALIGNED, SHIFTED}
        assert set(got["n_voxels"]) == {int(region.sum())}, name
        assert np.isfinite(got["pearson"]).all()


def test_probe_refuses_a_probe_rois_file_of_other_images(run, tmp_path):
    root, paths, train = run
    other = tmp_path / "other.probe_rois.hdf5"
    prepare_subject(root, "subj07", sessions=SESSIONS, protocol="clean", voxel_set="probe_rois", probe_rois=ROIS,
                    out_path=other)
    with pytest.raises(ValueError, match="other.probe_rois.hdf5: its protocol 'clean' differs"):
        _transfer(paths, train, other)
