"""The decoding rules on a tiny simulated run: offline reconstructions, metric CSVs,
Figure 3, decoding=none, and MindEye2's input assembly up to the checkpoint."""

import h5py
import numpy as np
import pytest
import torch
from tiny_workflow import run_snakemake as snakemake

from nrf.decoding import mindeye2
from nrf.decoding.image_metrics import METRICS
from nrf.frames import read_frame

pytestmark = pytest.mark.workflow

RESULTS = "results/simulated/decoding"


@pytest.fixture(scope="module")
def decoded(tiny_run):
    return tiny_run  # the shared tiny run of `all` (conftest.py) decodes every source


def test_every_source_is_decoded_and_scored(decoded):
    with h5py.File(decoded / "results/simulated/prepared/subj01.hdf5") as f:
        test_ids = f["test/image_ids"][()]
    for source in ("measured", "linear", "nrf"):
        with h5py.File(decoded / f"{RESULTS}/offline/{source}/subj01.hdf5") as f:
            assert f["images"].shape == (20, 16, 16, 3) and f["images"].dtype == np.uint8
            np.testing.assert_array_equal(f["image_ids"][()], test_ids)
        metrics = read_frame(decoded / f"{RESULTS}/offline/metrics/{source}/subj01.csv",
                             "decoding_metrics").set_index("metric")
        assert list(metrics.index[:8]) == list(METRICS)
        assert np.isfinite(metrics.loc[["pixcorr", "ssim", "feature_2way"], "value"]).all()
        # a paper column is a number exactly when its network was available, else n/a with the reason
        for metric in METRICS[2:]:
            assert np.isnan(metrics.at[metric, "value"]) == metrics.at[metric, "note"].startswith("n/a")


def test_adaptation_cells_decode_the_papers_rows(decoded):
    """Scratch and the finetune ensemble are decoded in every cell (the paper's
    semantic rows); TINY has no subj07, so no cell decodes every method."""
    from nrf.experiments.methods import ENSEMBLE, SCRATCH

    scores = read_frame(decoded / f"{RESULTS}/offline/adaptation/subj01.csv", "adaptation_decoding")
    assert set(scores["method"]) == {SCRATCH, ENSEMBLE}
    assert set(scores["draw"]) == {0, 1} and np.isfinite(scores.query("metric == 'pixcorr'")["value"]).all()



def test_measured_responses_decode_above_chance(decoded):
    metrics = read_frame(decoded / f"{RESULTS}/offline/metrics/measured/subj01.csv",
                         "decoding_metrics").set_index("metric")
    assert metrics.at["feature_2way", "value"] > 0.6  # chance 0.5
    assert metrics.at["pixcorr", "value"] > 0.1


def test_fig3_and_logs(decoded):
    assert (decoded / "results/simulated/figures/fig3.png").stat().st_size > 10_000
    assert (decoded / "results/simulated/figures/fig3.pdf").stat().st_size > 1_000
    logs = {p.parent.name for p in (decoded / "logs").rglob("*.log")}
    assert {"train_decoder", "decode_offline", "build_fig3"} <= logs


def test_decoding_none_leaves_the_dag(decoded):
    result = snakemake(decoded, "all_decoding", "-n", "--config", "decoding=none")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    assert not {"train_decoder", "decode_offline", "score_decoding", "build_fig3"} & set(out.split()), out[-2000:]
    # Figure 3 shows decoded images: asked for without a decoder, it says so before any job
    result = snakemake(decoded, "fig3", "-n", "--config", "decoding=none")
    assert result.returncode != 0 and "fig3 needs `decoding: offline`" in result.stdout + result.stderr


def test_mindeye2_inputs_stop_at_a_missing_checkpoint_and_assemble_with_one(decoded, tmp_path):
    target = f"{RESULTS}/mindeye2/inputs/measured/subj01.hdf5"
    missing = tmp_path / "no_checkpoints"
    result = snakemake(decoded, target, "--config", "decoding=mindeye2",
                       f"decoder={{mindeye2: {{checkpoint_dir: {missing}}}}}")
    assert result.returncode != 0
    log = (decoded / "logs/mindeye2_inputs/simulated_measured_subj01.log").read_text()
    assert f"MindEye2 checkpoint folder {missing}" in log and "does not exist" in log
    assert "pscotti/mindeyev2" in result.stderr
    with h5py.File(decoded / "results/simulated/prepared/subj01.hdf5") as f:
        measured = f["test/responses"][()]
    # a stand-in checkpoint with the subject's voxel count: the input is assembled
    ckpt = tmp_path / "ckpt"
    files = mindeye2.required_files(ckpt, "subj01")
    files["model"].parent.mkdir(parents=True)
    torch.save({"model_state_dict": {mindeye2.RIDGE_KEY: torch.zeros(4, measured.shape[1])}}, files["model"])
    for key, path in files.items():
        if key != "model":
            path.touch()
    result = snakemake(decoded, target, "--config", "decoding=mindeye2",
                       f"decoder={{mindeye2: {{checkpoint_dir: {ckpt}}}}}")
    assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(decoded / target) as f:
        assert f["voxels"].shape == (20, 1, measured.shape[1])
        np.testing.assert_array_equal(f["voxels"][:, 0], measured)
