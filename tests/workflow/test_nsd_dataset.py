"""dataset=nsd: the download rules feed the same DAG, offline.

A simulated tree in NSD's layout (with the betas' HDF5 twins) is served by a
real HTTP server on 127.0.0.1 as NSD's bucket; the pipeline downloads what it
needs and runs every downstream rule unchanged. The paper's configuration is
checked by a dry run that lists the jobs a real run would execute. Figure
4b/c's probe runs on the downloaded target too: its regions are whole-brain
(the simulated atlases reach outside nsdgeneral), so the target's ROI voxels
outside nsdgeneral are downloaded into their own compact files and reach it.
"""

import copy
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from http_server import RangeServer

from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key, read_compact_betas
from nrf.data.nsd_tree import load_volume, session_betas
from nrf.data.prepare import prepare_subject
from nrf.data.roi_voxels import tree_outside_voxels
from nrf.frames import read_frame
from nrf.data.simulate import simulate_nsd_tree

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow
SUBJECTS = ["subj01", "subj02"]
PROBE_CSV = "results/nsd/probes/transfer/n20.csv"  # subj01's NRF finetuned on subj02's regions
TINY_MODELS = {
    "features": {"extractor": "filterbank"},
    "nrf": {"merger_token_dim": 4, "merger_dim": 16, "fourier_scale": 8.0, "depth": 2, "width": 32},
    "train": {"batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3, "max_steps": 30, "min_steps": 0, "eval_every": 15,
              "patience": 2},
    "linear": {"epochs": 3, "lr": 3.0e-3, "batch_images": 16},
    "fwrf": {"n_top": 8, "lambdas": [10.0, 1000.0]},
    "universal": {"channels": 4, "embedding_dim": 8, "batch_images": 8, "batch_voxels": 64, "lr": 3.0e-3,
                  "max_steps": 20, "min_steps": 0, "eval_every": 10, "patience": 2,
                  "transfer_max_steps": 10, "transfer_draws": 1, "clusters": 3},
}


def snakemake(workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    served = tmp_path_factory.mktemp("bucket")
    # subj05 is served but not configured: none of its files may be fetched
    simulate_nsd_tree(served, subjects=[*SUBJECTS, "subj05"], n_train_images=60, n_test_images=20, repeats=3,
                      trials_per_session=60, image_size=32, seed=5, hdf5_twins=True)
    workdir = tmp_path_factory.mktemp("nsd_run")
    with RangeServer(served) as server:
        config = {
            "dataset": "nsd",
            "subjects": SUBJECTS,
            "sessions": {s: 4 for s in SUBJECTS},
            "shots": [20],
            "nsd": {"base_url": server.url, "check_voxel_counts": False, "trials_per_session": 60},
            "presets": {"nsd": TINY_MODELS},
            "decoding": "none",  # decoding has its own tests; this one is about the download path
            "probes": {"draws": 1}, "adaptation": {"finetune_steps": 30},  # the probe: one draw, a few steps
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        result = snakemake(workdir, "table1", PROBE_CSV, "--cores", "2", "--configfile", str(workdir / "config.yaml"))
        keys_requested = {key for method, key, _ in server.requests if method == "GET"}
    assert result.returncode == 0, result.stderr[-4000:]
    return served, workdir, keys_requested


def test_table1_built_from_downloaded_data(served_run):
    _, workdir, _ = served_run
    table = read_frame(workdir / "results/nsd/tables/table1.csv", "table")
    assert {"Linear Regression", "NRF", "fWRF"} <= set(table["method"])
    assert set(table["dataset"]) == {"nsd"}
    assert np.isfinite(table.loc[~table["quoted"], "pearson_mean"]).all()  # quoted rows: the paper's only


def test_only_needed_files_are_fetched(served_run):
    served, workdir, keys = served_run
    # the image brick is read by range into a subset, never copied whole
    local = workdir / "resources/nsd"
    assert not (local / nsd_layout.STIMULI).exists()
    with h5py.File(local / nsd_layout.STIMULI_SUBSET) as f:
        n_subset = len(f["image_ids"])
    with h5py.File(served / nsd_layout.STIMULI) as f:
        assert n_subset < f["imgBrick"].shape[0]
    # betas arrive as the twins' nsdgeneral voxels; no .nii.gz betas are
    # fetched (their size is asked with HEAD, for the cost report)
    assert not any(k.endswith(".nii.gz") and "betas_session" in k for k in keys)
    assert all(k.startswith(("nsddata/", "nsddata_betas/", "nsddata_stimuli/")) for k in keys)
    assert not any("subj05" in k for k in keys)


def test_downloaded_betas_equal_the_served_voxels(served_run):
    served, workdir, _ = served_run
    for subject in SUBJECTS:
        key = nsd_layout.betas(subject, 3)
        betas, voxel_ijk = read_compact_betas(workdir / "resources/nsd" / compact_key(key))
        np.testing.assert_array_equal(betas, session_betas(served, subject, 3, voxel_ijk, "nifti"))


def test_probe_regions_reach_outside_nsdgeneral(served_run):
    """Figure 4b/c's EBA is its label inside the brain mask, as the authors build it:
    the downloaded run's probe sees every such voxel of the target, nsdgeneral or not."""
    served, workdir, keys = served_run
    volume = {name: load_volume(served, nsd_layout.roi("subj02", name))[0] for name in ("nsdgeneral", "floc-bodies")}
    brainmask = load_volume(served, nsd_layout.brainmask("subj02"))[0] > 0
    eba = (volume["floc-bodies"] == 1) & brainmask
    outside = int((eba & ~(volume["nsdgeneral"] > 0)).sum())
    assert outside > 0  # the fixture's EBA reaches outside nsdgeneral
    rows = read_frame(workdir / PROBE_CSV, "probe_rows")
    assert set(rows.loc[rows["panel"] == "EBA", "n_voxels"]) == {int(eba.sum())}
    # the target's ROI voxels outside nsdgeneral arrive in their own compact files; the base's never
    local = workdir / "resources/nsd"
    betas, voxel_ijk = read_compact_betas(local / compact_key(nsd_layout.betas("subj02", 2), "probe_rois"))
    rois = {"EBA": ("floc-bodies", [1]), "V1": ("prf-visualrois", [1, 2])}  # probes.rois' default
    np.testing.assert_array_equal(voxel_ijk, tree_outside_voxels(served, "subj02", rois)[0])
    np.testing.assert_array_equal(betas, session_betas(served, "subj02", 2, voxel_ijk, "nifti"))
    assert not (local / compact_key(nsd_layout.betas("subj01", 2), "probe_rois")).exists()
    assert not any("probe_rois" in k for k in keys)  # read from the served twins, as the nsdgeneral voxels


def test_prepared_data_equal_a_local_preparation(served_run, tmp_path):
    served, workdir, _ = served_run
    local = prepare_subject(served, "subj02", sessions=[1, 2, 3, 4], protocol="paper", out_path=tmp_path / "p.hdf5")
    with h5py.File(workdir / "results/nsd/prepared/subj02.hdf5") as f:
        np.testing.assert_array_equal(f["train/responses"][()], local.train.responses)
        np.testing.assert_array_equal(f["coords"][()], local.coords)


def test_paper_config_dry_run_lists_the_real_jobs(tmp_path):
    result = snakemake(tmp_path, "all", "-n", "--configfile", str(REPO / "configs/nsd_paper.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "adapt_cell" in out and "n800_draw2" in out and "subj05/n20_draw0" in out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats"):], flags=re.M))
    # 2 experiment files + 9 volumes (brainmask, nsdgeneral, 5 atlases,
    # transform, ncsnr) for each of 4 subjects; 40 sessions each
    assert counts["download_nsd_file"] == "38"
    assert counts["download_session_betas"] == "160"
    # Figure 4b/c's target (subj07): its ROI voxels outside nsdgeneral, 40 sessions, prepared once
    assert counts["download_probe_roi_betas"] == "40" and counts["prepare_probe_rois"] == "1"
    assert "subj07/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session40.probe_rois.hdf5" in out
    assert counts["download_stimuli_subset"] == "1"
    # every target x shot count x draw of the paper's adaptation experiments
    for rule, n in (("prepare_subject", 4), ("train_encoder", 20), ("build_table1", 1), ("train_universal_joint", 1),
                    ("adapt_cell", 4 * 3 * 3), ("build_table2", 1), ("build_table7", 1), ("build_table8", 1),
                    ("build_table9", 1), ("build_table3", 1)):
        assert counts[rule] == str(n), (rule, counts)
    assert "betas_session40.nsdgeneral.hdf5" in out and "subj07" in out
    assert "nsd_stimuli.subset.hdf5" in out
    assert not (tmp_path / "resources").exists()  # a dry run touches nothing


def test_paper_config_asserts_voxel_counts_and_paper_sizes():
    from nrf.config import validate_config

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "configs/nsd_paper.yaml").read_text())
    merged = copy.deepcopy(base)
    merged.update(paper)
    config = validate_config(merged, REPO / "schemas/config.schema.yaml")
    assert config["nsd"]["check_voxel_counts"] is True
    assert (config["nrf"]["depth"], config["nrf"]["width"]) == (8, 4096)
    assert (config["train"]["batch_images"], config["train"]["batch_voxels"]) == (32, 2000)
    assert config["features"]["extractor"] == "clip_vitb16"
    assert nsd_layout.NSD_NSDGENERAL_VOXELS == {"subj01": 15724, "subj02": 14278, "subj05": 13039, "subj07": 12682}
