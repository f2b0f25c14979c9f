"""The Universal Brain Encoder's claim on the simulator, at each seed of --science-seeds:
training jointly on several subjects (shared weights, one embedding per
voxel) predicts a subject's test images better than training on that subject
alone, when each subject has few images. And the noise-ceiling-normalised
score of the noiseless responses themselves is exactly 100 %.

Three simulated subjects, 240 training images each, the clean protocol
(validation images drawn from the training images), the default's Universal
sizes with a short fixed budget; joint training counts its steps per subject
(nrf.experiments.transfer.train_joint).

Seeds 0, 1, 2 (subj01 test median r, single vs joint): 0.122 vs 0.211,
0.175 vs 0.275, 0.167 vs 0.310; gap +0.089 to +0.143, so the margin is 0.04
(half the smallest gap). The noiseless responses score 100 % at all three.
"""

import h5py
import numpy as np
import pytest

from nrf.data.predictions import write_predictions
from nrf.experiments.scoring import score_predictions
from nrf.experiments.transfer import predict_joint, train_joint
from nrf.experiments.voxels import write_voxel_table
from nrf.frames import read_frame
from nrf.models.universal_options import universal_options
from nrf.reporting.encoders import median_normalised
from nrf.training.encoders import predict_test, train_encoder

pytestmark = pytest.mark.science
SUBJECTS = ["subj01", "subj02", "subj05"]
TARGET = SUBJECTS[0]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, build_simulation, science_seed):
    sim = build_simulation(tmp_path_factory.mktemp(f"universal_seed{science_seed}"), SUBJECTS, sessions=[1, 2, 3],
                           seed=science_seed,
                           n_train_images=240, trials_per_session=340)
    return sim.config, sim.root, sim.tmp, sim.prepared, sim.features, sim.seed


def test_joint_training_beats_single_subject(simulated):
    config, _, tmp, prepared, features, seed = simulated
    model_options, train_options, _ = universal_options(config["universal"])
    train_options = dict(train_options, max_steps=200, eval_every=100, patience=None, batch_voxels=256)
    medians = {}
    train_encoder("universal", prepared[TARGET], features, tmp / "single.pt", model_options=model_options,
                  train_options=train_options, seed=seed)
    predict_test(tmp / "single.pt", prepared[TARGET], features, tmp / "single.hdf5")
    medians["single"] = score_predictions(tmp / "single.hdf5", prepared[TARGET], tmp / "single.csv")["median_r"]
    train_joint([prepared[s] for s in SUBJECTS], features, tmp / "joint.pt", model_options=model_options,
                train_options=train_options, seed=seed)
    predict_joint(tmp / "joint.pt", prepared[TARGET], features, tmp / "joint.hdf5")
    medians["joint"] = score_predictions(tmp / "joint.hdf5", prepared[TARGET], tmp / "joint.csv")["median_r"]
    print(f"seed {seed} {TARGET} test median r:", {k: round(v, 3) for k, v in medians.items()})
    assert medians["joint"] > medians["single"] + 0.04, medians


def test_noiseless_responses_score_100_percent_of_the_ceiling(simulated):
    _, root, tmp, prepared, _, _ = simulated
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
    assert read_frame(tmp / "voxels.csv", "voxels")["noise_ceiling"].between(0, 100).all()
