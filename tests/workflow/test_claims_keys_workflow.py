"""The claims run's keys in the workflow (issue 23): without them the probes and
ablations plan the jobs they always did; ablations.seeds multiplies the
depth/width trainings; a tiny run with every key set writes the seed spread,
the shuffle probe's fit at its own width and the probes' draws."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import yaml
from test_pipeline import _planned_jobs
from tiny_workflow import REPO, TINY, run_snakemake

from nrf.frames import read_frame
from nrf.reporting import claims as C

pytestmark = pytest.mark.workflow
TARGETS = ("fig4", "table4", "table5", "table6")


def _dry_run(workdir, config: dict, *targets) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, *targets, "-n", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _outputs(log: str) -> set[str]:
    """Every output file a dry run plans (its jobs' `output:` lines)."""
    return {f.strip() for line in log.splitlines() if line.strip().startswith("output:")
            for f in line.split(":", 1)[1].split(",")}


def _with(**sections) -> dict:
    config = copy.deepcopy(TINY)
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def test_absent_keys_plan_the_jobs_and_files_they_always_did(tmp_path):
    plain = _dry_run(tmp_path / "plain", TINY, *TARGETS)
    # TINY: subj01 shuffled and the base, subj02 the target, one shot; the shuffle probe's intact arm is
    # subj01's 2 adaptation cells (their base: subj02's NRF) and Table 4's "finetune both" subj02's 2
    # (their base: subj01's); depths [2, 3] and widths [16, 32] around TINY's NRF (depth 2, width 32)
    # share one pair: 3 trainings
    assert _planned_jobs(plain) == {
        "simulate_dataset": 1, "extract_features": 1, "prepare_subject": 2, "train_encoder": 2, "adapt_cell": 4,
        "paper_tables": 1,
        "probe_shuffle": 1, "probe_transfer": 1, "prepare_probe_rois": 1, "build_fig4": 1,
        "ablation_finetune_strategy": 1, "build_table4": 1, "ablation_architecture": 3, "build_table5": 1,
        "build_table6": 1,
        "fig4": 1, "table4": 1, "table5": 1, "table6": 1,
    }
    files = _outputs(plain)
    assert "results/simulated/probes/shuffle/n20.csv" in files
    ours = [f for f in files if "/probes/" in f or "/ablations/" in f]
    assert ours and not any("_fit" in f or "_seed" in f for f in ours)
    assert "results/simulated/ablations/models/nrf_depth3_width32.pt" in files
    # probes.draws equal to adaptation.draws plans the very same jobs and files (the draws live inside them)
    same = _dry_run(tmp_path / "same", _with(probes={"draws": TINY["presets"]["simulated"]["adaptation"]["draws"]}),
                    *TARGETS)
    assert _planned_jobs(same) == _planned_jobs(plain) and _outputs(same) == files


def test_default_config_plans_the_default_probe_and_ablation_jobs(tmp_path):
    # config.yaml itself (no --configfile): 3 shots, 2 draws, depths 4/8/16 and widths 64/128/256 around 4 x 128
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "2", "-n", *TARGETS]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _planned_jobs(result.stdout + result.stderr)
    assert {r: jobs[r] for r in ("probe_shuffle", "probe_transfer", "ablation_architecture",
                                 "ablation_finetune_strategy")} == {
        "probe_shuffle": 3, "probe_transfer": 3, "ablation_architecture": 5, "ablation_finetune_strategy": 1}


def test_seeds_double_the_architecture_jobs(tmp_path):
    log = _dry_run(tmp_path, _with(ablations={"seeds": [0, 1]}), "table5", "table6")
    assert _planned_jobs(log)["ablation_architecture"] == 2 * 3
    files = _outputs(log)
    for seed in (0, 1):
        assert f"results/simulated/ablations/scores/nrf_depth2_width32_seed{seed}.csv" in files
    assert "results/simulated/ablations/scores/nrf_depth2_width32.csv" not in files


def test_shuffle_nrf_adds_the_fit_output(tmp_path):
    log = _dry_run(tmp_path, _with(probes={"shuffle_nrf": {"width": 24}}), "fig4")
    assert _planned_jobs(log)["probe_shuffle"] == 1
    assert "results/simulated/probes/shuffle/n20_fit.csv" in _outputs(log)


def test_a_shuffle_schedule_of_its_own_trains_the_intact_arm(tmp_path):
    # the adaptation cells' NRF scratch is the intact arm only where its schedule is the probe's
    def intact_cells(log):
        jobs = log.split("rule probe_shuffle:")[1].split("\n\n")[0]
        return "adaptation/subj01/n20_draw" in jobs

    assert intact_cells(_dry_run(tmp_path / "plain", TINY, "fig4"))
    for probes in ({"shuffle_max_steps": 999}, {"shuffle_min_steps": 10}):
        assert not intact_cells(_dry_run(tmp_path / str(len(probes)) / next(iter(probes)), _with(probes=probes),
                                         "fig4"))


def test_bad_key_stops_at_start_up(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_with(ablations={"seeds": [1, 1]})))
    result = run_snakemake(tmp_path, "table5", "-n", timeout=300)
    assert result.returncode != 0 and "config key 'ablations.seeds'" in result.stdout + result.stderr


def test_tiny_run_with_every_key(tmp_path):
    """A real tiny run: the shuffle probe at its own width and schedule with its fit, one probe draw, two seeds
    (three depths and widths, so the claims page can match them to the paper's three)."""
    config = _with(probes={"draws": 1, "shuffle_nrf": {"width": 24, "fourier_scale": 16.0}, "shuffle_max_steps": 40,
                           "shuffle_min_steps": 12},
                   ablations={"seeds": [0, 1], "depths": [2, 3, 4], "widths": [16, 32, 48]})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "fig4", "table5", "table6")
    assert result.returncode == 0, result.stderr[-4000:]
    results = tmp_path / "results/simulated"
    # probes.draws: one draw in every Figure 4 point (TINY's adaptation.draws is 2)
    fig4 = read_frame(results / "figures/fig4.csv", "table")
    assert (fig4["n_draws"] == 1).all() and set(fig4["panel"]) == {"a", "EBA", "V1"}
    # probes.shuffle_nrf: the probe's NRF has the given width, and its fit sits beside the linear model's
    fit = read_frame(results / "probes/shuffle/n20_fit.csv", "shuffle_fit")  # checksummed
    nrf = fit[fit["model"] == "NRF"]
    assert len(nrf) == 3 and (nrf["width"] == 24).all() and (nrf["fourier_scale"] == 16.0).all()
    assert (fit["model"] == "Linear Regression").sum() == 1 and fit["train_pearson"].between(-1, 1).all()
    # probes.shuffle_max_steps / shuffle_min_steps: every arm ran past step 12 and none past 40
    assert nrf["steps"].between(12, 40).all()
    # ablations.seeds: a spread column, over two seeds
    for name, axis in (("table5", "depth"), ("table6", "width")):
        table = read_frame(results / f"tables/{name}.csv", "table")
        assert (table["n_seeds"] == 2).all() and np.isfinite(table["pearson_sem"]).all()
        assert np.isfinite(table["pearson_sd"]).all()
        assert "mean ± SEM over 2 seeds" in (results / f"tables/{name}.md").read_text()
    # the claims page reads both: the shuffle row carries the fit, depth and width have a spread
    rows = C.claim_rows(REPO / "reference/nrf_paper_tables.csv", results).set_index("claim")
    assert "voxel identity at N = 20 (width 24, Fourier scale 16)" in rows.at["shuffle", "run_numbers"]
    assert rows.at["depth", "run_verdict"] not in (C.NO_SPREAD, C.NOT_RUN)
    assert rows.at["width", "run_verdict"] not in (C.NO_SPREAD, C.NOT_RUN)
