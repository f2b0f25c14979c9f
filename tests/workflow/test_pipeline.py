"""Snakemake itself on a tiny config in a temporary folder: the files it makes."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from nrf.frames import read_frame
from tiny_workflow import TINY
from tiny_workflow import run_snakemake as snakemake

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow


def test_table1_has_every_method_with_finite_scores(tiny_run):
    table = read_frame(tiny_run / "results/simulated/tables/table1.csv", "table")
    assert list(table["method"]) == [
        "Measured fMRI", "Linear Regression", "fWRF", "Ridge (per-voxel CV)", "Universal (single subject)",
        "Universal (all subjects)", "NRF", "MindSimulator (Trials=1)", "MindSimulator (Trials=5)",
    ]
    assert np.isfinite(table[["pixcorr_mean", "ssim_mean"]].to_numpy()[:7]).all()  # decoded, every row we ran
    run = table[~table["quoted"] & (table["method"] != "Measured fMRI")]
    assert np.isfinite(run[["pearson_mean", "pearson_sem", "mse_mean", "nc_mean", "top1_mean"]].to_numpy()).all()
    assert table["quoted"].sum() == 2 and table.loc[table["quoted"], "pearson_mean"].isna().all()
    assert (table.dropna(subset=["pearson_paper"])["pearson_paper"] > 0.3).all()  # the paper's values beside ours
    assert set(table["method"].dropna()) >= {"fWRF", "NRF"}
    rois = read_frame(tiny_run / "results/simulated/tables/table1_rois.csv", "table")
    assert {"subject", "method", "atlas", "roi", "median_r"} <= set(rois)
    assert set(rois["subject"]) == {"subj01", "subj02"}
    universal = read_frame(tiny_run / "results/simulated/tables/table_universal.csv", "table")
    assert len(universal) == 2 * 3 and universal["top1"].between(0, 1).all()
    assert set(table["protocol"]) == {"paper"}
    assert "Table 1" in (tiny_run / "results/simulated/tables/table1.md").read_text()


def test_prepared_and_predictions_agree_in_shape(tiny_run):
    with h5py.File(tiny_run / "results/simulated/prepared/subj01.hdf5") as f:
        n_voxels = f["coords"].shape[0]
        assert f["train/responses"].shape == (60, n_voxels)
        assert f["test/responses"].shape == (20, n_voxels)
    with h5py.File(tiny_run / "results/simulated/predictions/nrf/subj01.hdf5") as f:
        assert f["predictions"].shape == (20, n_voxels)
    scores = read_frame(tiny_run / "results/simulated/scores/nrf/subj01.csv", "scores")
    assert len(scores) == n_voxels


def test_every_job_left_a_log_and_a_benchmark(tiny_run):
    logs = {p.parent.name for p in (tiny_run / "logs").rglob("*.log")}
    assert {"simulate_dataset", "prepare_subject", "extract_features", "train_encoder", "build_table1"} <= logs
    assert list((tiny_run / "benchmarks/runs/train_encoder").glob("*.tsv"))


def test_rerun_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "all_tables", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_finished_run_copied_elsewhere_plans_nothing(tiny_run, tmp_path):
    # no rule input is an absolute path (the paper's numbers are copied into the run),
    # so the same files in another folder, metadata and all, are up to date there too
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, symlinks=True)  # copy2: modification times kept
    result = snakemake(copy, "all_tables", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_lost_checkpoint_is_rebuilt(tiny_run, tmp_path):
    # a job killed after Snakemake removed its output (a forced retrain, say) leaves
    # the predictions and tables of the old checkpoint behind: every checkpoint is a
    # deliverable of all_tables, so the next run trains it again
    for checkpoint in ("results/simulated/models/fwrf/subj02.pt", "results/simulated/models/universal_joint/all.pt"):
        path = tiny_run / checkpoint
        aside = tmp_path / path.name
        shutil.move(path, aside)  # moved back with its modification time: the run stays finished
        try:
            result = snakemake(tiny_run, "all_tables", "-n")
        finally:
            shutil.move(aside, path)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-3000:]
        rule = "train_encoder" if "fwrf" in checkpoint else "train_universal_joint"
        assert re.search(rf"rule {rule}:\n(?:    .*\n)*?    output: {re.escape(checkpoint)}\n", out), out[-3000:]


def test_killed_training_job_gets_its_checkpoint_rebuilt(tiny_run, tmp_path):
    # the issue's trap, for real: a training job killed mid-run after Snakemake
    # removed its old output; the rerun of all_tables must train it again (before,
    # the tables were newer than everything they read, so "Nothing to be done")
    import os
    import signal
    import time

    copy = tmp_path / "killed"
    shutil.copytree(tiny_run, copy, symlinks=True)
    checkpoint = copy / "results/simulated/models/fwrf/subj02.pt"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(copy),
           "--configfile", str(copy / "config.yaml"), "--cores", "1", "--force", str(checkpoint.relative_to(copy))]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while checkpoint.exists() and time.time() < deadline:  # Snakemake removes it as the job starts
            time.sleep(0.2)
        assert not checkpoint.exists(), "the forced training job never started"
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the job, its script and Snakemake, at once
        job.wait()
    assert not checkpoint.exists()
    assert snakemake(copy, "--unlock").returncode == 0
    result = snakemake(copy, "all_tables", "--rerun-incomplete")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert checkpoint.is_file()
    again = snakemake(copy, "all_tables", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_embedded_config_is_read_from_the_workflow_folder(tmp_path):
    # run from another folder with a partial --configfile: the repo's config.yaml is
    # read first and the partial file merges over it, preset keys included
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump({
        "subjects": ["subj01", "subj02"], "shots": [20], "presets": {"simulated": {"nrf": {"depth": 2}}},
    }))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "partial.yaml"), "--cores", "1", "-n", "table1", "table5", "table6"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"Config file {REPO / 'config.yaml'} is extended by additional config" in out
    embedded = yaml.safe_load((REPO / "config.yaml").read_text())["presets"]["simulated"]
    # features.extractor stays the preset's filterbank (the schema's default is clip_vitb16)
    assert embedded["features"]["extractor"] == "filterbank"
    assert "results/simulated/features/filterbank.hdf5" in out and "clip_vitb16" not in out
    # mem_mb from the preset (the schema's default is 16000): the resources a job declares
    train = re.search(r"rule train_encoder:\n(?:    .*\n)*?    resources: (.*)\n", out).group(1)
    assert f"mem_mb={embedded['mem_mb']['train']}," in train, train
    # presets.simulated.nrf merged key by key: depth from the partial file, width (like
    # fourier_seed) from the repo's; Tables 5-6 name their depth/width pairs
    width = embedded["nrf"]["width"]
    depths = embedded["ablations"]["depths"]  # the preset's, like the model sections
    for depth in depths:
        assert f"ablations/scores/nrf_depth{depth}_width{width}.csv" in out, (depth, width)
    assert "ablations/scores/nrf_depth2_width" in out
    assert not (tmp_path / "resources").exists()


def test_unconfigured_subject_stops_before_any_job(tmp_path):
    # a target whose subject (or second subject, or dataset) is not configured says so
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))  # subj01 and subj02
    expected = {
        ("table2",): "table2 needs subj07",
        ("table3",): "table3 needs subj07",
        ("fig2b",): "fig2b needs subj07",
        ("fig2",): "fig2b needs subj07",
        ("table9",): "table9 needs subj05",
        ("results/simulated/tables/table2.csv",): "table2 needs subj07",
        ("table4", "--config", "subjects=[subj01]"): "table4 needs two subjects",
        ("fig4", "--config", "subjects=[subj01]"): "fig4 needs two subjects",
        ("fig2a", "--config", "subjects=[subj01]"): "fig2a needs two subjects",
        ("fig_universal_transfer", "--config", "subjects=[subj01]"): "fig_universal_transfer needs two subjects",
        ("table7", "--config", "subjects=[subj01]"): "table7 needs subj01 and at least one other subject",
        ("fig3", "--config", "decoding=none"): "fig3 needs `decoding: offline`",
        ("table_resolution", "--config", "dataset=nsd"): "table_resolution needs `dataset: simulated`",
    }
    for args, message in expected.items():
        result = snakemake(tmp_path, "-n", *args)
        out = result.stdout + result.stderr
        assert result.returncode != 0, args
        assert message in out and "KeyError" not in out, (args, out[-2000:])
    assert not (tmp_path / "resources").exists()
    # the whole-run targets leave out what the config cannot build
    result = snakemake(tmp_path, "all", "-n")
    jobs = _planned_jobs(result.stdout + result.stderr)
    assert {"build_table7", "build_table8", "build_fig2a"} <= set(jobs), jobs
    assert not {"build_table2", "build_table3", "build_table9", "build_fig2b"} & set(jobs), jobs


def test_bad_config_stops_before_any_job(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**TINY, "subjects": ["subj01", "subj11"]}))
    result = snakemake(tmp_path, "all_tables")
    assert result.returncode != 0
    assert "subjects[1]" in result.stderr and "subj08" in result.stderr
    assert not (tmp_path / "resources").exists()


def test_workflow_is_lint_and_format_clean():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout[-3000:]
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr[-3000:]


def _planned_jobs(output: str) -> dict[str, int]:
    """{rule: count} from the job-stats table of a dry run."""
    jobs, table = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            table = True
            continue
        if table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_named_table_target_plans_its_subtree(tmp_path):
    # `snakemake table1` on a fresh tree: a target rule without wildcards
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(tmp_path, "table1", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _planned_jobs(result.stdout + result.stderr)
    # its own subtree: data, features, the encoders and the decoding of Table 1's rows
    assert jobs["table1"] == jobs["build_table1"] == jobs["simulate_dataset"] == jobs["extract_features"] == 1, jobs
    assert jobs["prepare_subject"] == 2 and jobs["train_encoder"] >= 4 and jobs["evaluate_encoder"] >= 4, jobs
    assert jobs.get("decode_offline") == 2, jobs  # every source of each subject in one job
    assert not {"adapt_cell", "build_fig2a", "build_fig3"} & set(jobs), jobs  # nothing of other targets


def test_report_shows_the_table_numbers(tiny_run):
    result = snakemake(tiny_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tiny_run / "report.html").read_text()
    table = read_frame(tiny_run / "results/simulated/tables/table1.csv", "table")
    html = (tiny_run / "results/simulated/tables/table1.html").read_text()
    assert "<table" in html and f"{table['pearson_mean'].iloc[1]:.3f}" in html
    assert "table1.html" in page  # the rendered table is in the report, not only a CSV link
    # the per-ROI companion and the resolution table too, as pages the report shows inline
    for name in ("table1_rois", "table_resolution"):
        assert f"results/simulated/tables/{name}.html" in page, name
        assert "<table" in (tiny_run / f"results/simulated/tables/{name}.html").read_text()


def test_reprepared_subject_reextracts_and_retrains_nothing_else(tiny_run):
    # re-preparing subj01 (a touch alone is not enough: Snakemake sees the same checksum)
    result = snakemake(tiny_run, "all_tables", "-n", "--forcerun", "results/simulated/prepared/subj01.hdf5")
    out = result.stdout + result.stderr
    jobs = _planned_jobs(out)
    assert "extract_features" not in jobs, jobs
    # only subj01's own encoders retrain (models trained on several subjects,
    # such as the joint Universal, legitimately include its data)
    retrained = re.findall(r"output: results/simulated/models/(?:linear|nrf|fwrf|ridge|universal)/(subj\d+)\.pt", out)
    assert retrained and set(retrained) == {"subj01"}, retrained


def test_corrupt_input_stops_the_job_and_the_log_says_why(tiny_run):
    # NaN in a prepared file: training stops naming it; the traceback is in the rule's log
    prepared = tiny_run / "results/simulated/prepared/subj02.hdf5"
    original = prepared.read_bytes()
    try:
        with h5py.File(prepared, "r+") as f:
            f["train/responses"][5:9] = np.nan
        ckpt = tiny_run / "results/simulated/models/linear/subj02.pt"
        result = snakemake(tiny_run, str(ckpt.relative_to(tiny_run)), "--forcerun", "train_encoder")
        assert result.returncode != 0
        assert not ckpt.exists()
        log = (tiny_run / "logs/train_encoder/simulated_linear_subj02.log").read_text()
        assert "Traceback" in log and "NonFiniteError" in log and "prepared/subj02.hdf5" in log
        assert "train/responses has" in log
    finally:
        prepared.write_bytes(original)
        assert snakemake(tiny_run, "all_tables").returncode == 0


def test_jobs_import_the_library_beside_the_snakefile(tmp_path):
    # a second clone, run with this environment (whose editable install is the first):
    # its jobs must import the second clone's src/, as its config validation does
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for path in ("src", "rules", "workflow_scripts", "schemas"):  # uncommitted work too
        shutil.rmtree(clone / path, ignore_errors=True)
        shutil.copytree(REPO / path, clone / path, ignore=shutil.ignore_patterns("__pycache__"))
    for path in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / path, clone / path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(TINY))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(clone / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "1", "results/simulated/prepared/subj01.hdf5"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / "logs/prepare_subject/simulated_subj01.log").read_text()
    assert f"library {clone / 'src' / 'nrf'}" in log, log[:2000]


def _report_results(report: Path) -> str:
    """The report's embedded ``var results = {...}`` script (every table and figure, as data URIs)."""
    block = re.search(r'<script id="results">(.*?)</script>', report.read_text(), re.S)
    assert block, "no results in the report"
    return block.group(1)


def test_report_renders_every_figure_in_a_browser(tiny_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    report = tiny_run / "report.html"
    if not report.exists():
        assert snakemake(tiny_run, "--report", "report.html").returncode == 0
    # every figure the run made is in the report, and the browser decodes each one
    harness = tmp_path / "harness.html"
    harness.write_text(
        "<html><body><ul id='out'></ul><script>" + _report_results(report) + """</script><script>
        const out = document.getElementById('out');
        function add(path, size) {
          const li = document.createElement('li'); li.dataset.path = path; li.dataset.size = size;
          li.textContent = path; out.appendChild(li);
        }
        for (const [path, r] of Object.entries(results)) {
          if (!r.mime_type.startsWith('image/')) { add(path, r.mime_type); continue; }
          const img = new Image();
          img.onload = () => add(path, img.naturalWidth + 'x' + img.naturalHeight);
          img.onerror = () => add(path, 'error');
          img.src = r.data_uri;
        }
        </script></body></html>""")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chr'}",
             "--virtual-time-budget=15000", "--dump-dom"]
    dom = subprocess.run([chromium, *flags, harness.as_uri()], capture_output=True, text=True, timeout=120).stdout
    shown = dict(re.findall(r'data-path="([^"]+)" data-size="([^"]+)"', dom))
    made = [str(p.relative_to(tiny_run)) for p in (tiny_run / "results/simulated/figures").glob("*.png")]
    assert made, "the run made no figures"
    for path in made:
        assert path in shown, f"{path} is not in the report"
        width, height = (int(v) for v in shown[path].split("x"))
        assert width > 300 and height > 200, (path, shown[path])
    tables = [str(p.relative_to(tiny_run)) for p in (tiny_run / "results/simulated/tables").glob("*.html")]
    assert tables and all(t in shown for t in tables), (tables, list(shown))
    # and the report page itself runs: its app renders the result categories
    page = subprocess.run([chromium, *flags, report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "Tables" in page and "Figures" in page
