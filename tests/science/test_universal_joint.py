"""The Universal Brain Encoder's claim on the simulator, at a fixed seed:
training jointly on several subjects (shared weights, one embedding per
voxel) predicts a subject's test images better than training on that subject
alone, when each subject has few images. And the noise-ceiling-normalised
score of the noiseless responses themselves is exactly 100 %.

Three simulated subjects, 240 training images each, the clean protocol
(validation images drawn from the training images), the default's Universal
sizes with a short fixed budget; joint training counts its steps per subject
(nrf.universal_files.train_joint).
"""

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nrf.config import validate_config
from nrf.data import nsd_layout
from nrf.data.predictions import write_predictions
from nrf.data.prepare import prepare_subject
from nrf.data.simulate import simulate_nsd_tree
from nrf.encoding import predict_test, score_predictions, train_encoder
from nrf.features.pipeline import extract_seen_images
from nrf.models.universal_options import universal_options
from nrf.reporting.encoders import median_normalised
from nrf.universal_files import predict_joint, train_joint
from nrf.voxel_table import write_voxel_table

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.science
SUBJECTS = ["subj01", "subj02", "subj05"]
TARGET = SUBJECTS[0]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    tmp = tmp_path_factory.mktemp("universal")
    root = tmp / "tree"
    sim = dict(config["simulation"], n_train_images=240, trials_per_session=340)
    simulate_nsd_tree(root, subjects=SUBJECTS, seed=0, **sim)
    prepared = {}
    for s in SUBJECTS:
        prepared[s] = tmp / f"{s}.hdf5"
        prepare_subject(root, s, sessions=[1, 2, 3], protocol="clean", val_fraction=0.1, seed=0,
                        out_path=prepared[s])
    features = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"],
                        stimuli_path=root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={s: 3 for s in SUBJECTS},
                        trials_per_session=340, out_path=features, device="cpu", log=logging.getLogger("science"))
    return config, root, tmp, prepared, features


def test_joint_training_beats_single_subject(simulated):
    config, _, tmp, prepared, features = simulated
    model_options, train_options, _ = universal_options(config["universal"])
    train_options = dict(train_options, max_steps=200, eval_every=100, patience=None, batch_voxels=256)
    medians = {}
    train_encoder("universal", prepared[TARGET], features, tmp / "single.pt", model_options=model_options,
                  train_options=train_options, seed=0)
    predict_test(tmp / "single.pt", prepared[TARGET], features, tmp / "single.hdf5")
    medians["single"] = score_predictions(tmp / "single.hdf5", prepared[TARGET], tmp / "single.csv")["median_r"]
    train_joint([prepared[s] for s in SUBJECTS], features, tmp / "joint.pt", model_options=model_options,
                train_options=train_options, seed=0)
    predict_joint(tmp / "joint.pt", prepared[TARGET], features, tmp / "joint.hdf5")
    medians["joint"] = score_predictions(tmp / "joint.hdf5", prepared[TARGET], tmp / "joint.csv")["median_r"]
    assert medians["joint"] > medians["single"] + 0.02, medians


def test_noiseless_responses_score_100_percent_of_the_ceiling(simulated):
    _, root, tmp, prepared, _ = simulated
    noiseless = root / f"simulation/{TARGET}_noiseless.hdf5"
    voxels = write_voxel_table(prepared[TARGET], tmp / "voxels.csv", noiseless=noiseless)
    assert 0 < voxels["noise_ceiling"].median() < 100
    with h5py.File(prepared[TARGET]) as f:
        test_ids = f["test/image_ids"][()]
    with h5py.File(noiseless) as f:
        row = {int(i): k for k, i in enumerate(f["image_ids"][()])}
        truth = f["responses"][()][[row[int(i)] for i in test_ids]]  # same voxel order as prepared here
        assert np.array_equal(f["voxel_ijk"][()], h5py.File(prepared[TARGET])["voxel_ijk"][()])
    write_predictions(tmp / "noiseless.hdf5", truth, test_ids)
    score_predictions(tmp / "noiseless.hdf5", prepared[TARGET], tmp / "noiseless.csv")
    assert median_normalised(tmp / "noiseless.csv", tmp / "voxels.csv") == pytest.approx(100.0, abs=1e-3)
    assert pd.read_csv(tmp / "voxels.csv")["noise_ceiling"].between(0, 100).all()
