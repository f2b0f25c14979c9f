"""The benchmark scripts a user reruns: their arithmetic and a tiny CPU run."""

import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_step_is_about_40_tflop_and_split_saves_the_first_layer():
    split = _load("split_first_layer")
    config = split.model_config(split.SIZES[split.PAPER])
    flops = {(m, r): split.step_flops(config, 32, 2000, m, r) for m in split.MODES for r in split.ROUTES}
    # issue 12: "about 40 TFLOP per batch of 32 x 2,000 queries at 8 x 4,096"
    assert 35e12 < flops["shared", "split"] < 42e12
    # six hidden 4096 x 4096 layers per pair dominate; the per-pair first layer
    # (1,600 -> 4,096) the split removes is ~6 % of the step
    assert flops["shared", "split"] < flops["per_image", "split"] < flops["shared", "concat"]
    assert flops["shared", "concat"] / flops["shared", "split"] == pytest.approx(1 + 1600 / (6 * 4096), rel=0.01)
    assert flops["per_image", "concat"] == flops["shared", "concat"]


def test_fifteen_minute_target_asks_a_third_of_an_h200_at_20_epochs():
    split = _load("split_first_layer")
    need = {e: split.required_throughput(e, "per_image") for e in (10, 20, 40)}
    # 20 epochs: 5,640 steps x 38.8 TFLOP + 21 passes x 1,000 x 15,724 queries x ~201 MFLOP = 285 PFLOP
    assert need[20]["steps"] == 5640 and need[20]["pflop"] == pytest.approx(285, rel=0.01)
    assert need[20]["tflops_needed"] == pytest.approx(317, rel=0.01)
    assert need[10]["tflops_needed"] < need[20]["tflops_needed"] < need[40]["tflops_needed"] < 989


def test_tiny_cpu_run_writes_rows_for_both_modes_and_routes(tmp_path):
    split = _load("split_first_layer")
    out = tmp_path / "r.json"
    split.main(["--device", "cpu", "--sizes", "tiny", "--steps", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert {(r["mode"], r["route"]) for r in result["rows"]} == {
        (m, r) for m in split.MODES for r in split.ROUTES}
    assert all(r["ms_per_step"] > 0 and r["tflop_per_step"] > 0 for r in result["rows"])
    assert len(result["target"]) == len(split.MODES) * 3
    est = split.estimate_subject(step_s=0.1, infer_qps=1e7, epochs=10)
    assert est["steps"] == 2820 and est["train_min"] == pytest.approx(4.7)
    assert est["eval_min"] == pytest.approx(11 * 1000 * 15724 / 1e7 / 60)


def test_default_run_summary_orders_rules_by_time(tmp_path):
    runs = tmp_path / "runs"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, s, rss in [("train_encoder", "a", 30.0, 800), ("train_encoder", "b", 20.0, 900),
                              ("prepare_subject", "a", 5.0, 600)]:
        (runs / rule).mkdir(parents=True, exist_ok=True)
        (runs / rule / f"{job}.tsv").write_text(header + f"{s}\t0:00:{int(s)}\t{rss}\t1\t1\t1\t0\t0\t50\t{s}\n")
    table = _load("default_run").per_rule(runs)
    assert list(table["rule"]) == ["train_encoder", "prepare_subject"]
    assert table.iloc[0]["total_s"] == 50.0 and table.iloc[0]["max_rss_mb"] == 900
    assert isinstance(table, pd.DataFrame)


def test_default_run_runs_the_claims_target_over_config_yaml(monkeypatch, tmp_path):
    bench = _load("default_run")
    seen = []
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: seen.append(cmd))
    monkeypatch.setattr(bench.tempfile, "mkdtemp", lambda prefix: str(tmp_path / prefix))
    bench.run_default(2, "claims", Path("configs/claims.yaml"))
    cmd = seen[0]
    configs = cmd[cmd.index("--configfile") + 1:]
    assert cmd[cmd.index("--cores") + 2] == "claims" and [Path(c).name for c in configs] == ["config.yaml",
                                                                                               "claims.yaml"]
    bench.run_default(2)
    assert seen[1][seen[1].index("--cores") + 2] == "all" and len(seen[1][seen[1].index("--configfile") + 1:]) == 1


def test_peak_lookup_tells_h100_variants_apart():
    split = _load("split_first_layer")
    assert split.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert split.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert split.peak_tflops("NVIDIA H100 NVL", "fp32") == 835.0 / 2  # TF32
    assert split.peak_tflops("NVIDIA H200") == 989.0 and split.peak_tflops("CPU") is None


def test_gpu_script_records_every_stage_in_a_tiny_cpu_run(tmp_path):
    # issue 22 item 3: the GPU call's script, end to end at tiny sizes on the CPU; every stage appends
    # its result as it is measured, the build time apart from the step time
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "SIZE": "tiny", "DEVICE": "cpu", "EXTRAS": "0", "STEPS": "2", "OUT": str(out),
           "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "BUDGET_S": "400"}
    done = subprocess.run(["bash", str(BENCH / "gpu_paper_scale.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (out / "gpu_paper_scale.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in records]
    assert stages[:4] == ["train", "sync", "val", "estimate"] and "clip" in stages
    assert not any("failed" in r or r.get("skipped") == "budget spent" for r in records), records
    trains = [r for r in records if r["stage"] == "train"]
    assert [t["precision"] for t in trains] == ["bf16"]  # fp32, split/concat and compile: EXTRAS=0
    for t in trains:
        assert t["build_s"] > 0 and t["step_ms"] > 0 and t["first_steps"] == t["timed_steps"] == 2
        assert t["tflop_per_step"] > 0 and "on cpu" in t["log"][0]
    assert records[1]["skipped"] == "CUDA only"
    estimate = records[3]
    assert isinstance(estimate["epochs_in_15_min"], int) and estimate["epoch_s"] > estimate["val_s"]
    clip = next(r for r in records if r["stage"] == "clip")
    assert clip.get("images_per_s", 0) > 0 or "open_clip" in clip["skipped"]
    md = (out / "gpu_paper_scale.md").read_text()
    assert "model build" in md and "ms per step" in md and "epochs fit in 15 minutes" in md
    assert (out / "host_step_cpu.json").is_file() and "Done (EXTRAS=0)" in md


def test_host_step_reports_old_and_new_paths_in_one_run(tmp_path):
    host = _load("host_step")
    result = host.main(["--shape", "tiny", "--steps", "2", "--rounds", "2", "--json", str(tmp_path / "h.json")])
    paths = [r["path"] for r in result["rows"]]
    assert paths[0].startswith("old") and len(paths) == 4
    assert result["rows"][0]["old_over_this"] == 1.0 and all(r["ms_per_step"] > 0 for r in result["rows"])
    assert result["aten_ops_per_draw"] >= 8  # draws, gathers: each one kernel launch on a GPU
    # the old path draws what train_nrf drew before issue 22: the new CPU path draws the same batch
    f, r, c = host.synthetic(host.TINY)
    kw = dict(n_images=8, n_voxels=50, seed=3)
    (fo, co, to), (fn, cn, tn) = host.OldHostPath(f, r, c, device="cpu", **kw).draw(), \
        host.TrainingBatches(f, r, c, mode="per_image", device="cpu", **kw).draw()
    assert all(torch.equal(fo[k], fn[k]) for k in fo)
    assert torch.equal(to.sort(dim=1).values, tn.sort(dim=1).values)  # tied draws may swap voxel order
    assert co.shape == cn.shape


def test_gpu_hours_arithmetic_per_job():
    hours = _load("gpu_hours")
    text = ("rule train_encoder:\n    wildcards: dataset=nsd, model=nrf, subject=subj01\n"
            "    resources: tmpdir=/tmp, mem_mb=64000, gpu=1\n"
            "rule adapt_cell:\n    wildcards: dataset=nsd, subject=subj07, n=20, draw=0\n"
            "    resources: tmpdir=/tmp, gpu=1, mem_mb=32000\n"
            "localrule all_tables:\n    input: x\n    resources: tmpdir=/tmp\n")
    jobs = hours.read_jobs(text)
    assert jobs == [("train_encoder", {"dataset": "nsd", "model": "nrf", "subject": "subj01"}, 1),
                    ("adapt_cell", {"dataset": "nsd", "subject": "subj07", "n": "20", "draw": "0"}, 1),
                    ("all_tables", {}, 0)]
    cfg = hours.load_config(hours.REPO)
    rows = hours.job_costs(jobs, cfg, best_epochs=20)
    paper = hours.nrf_config(cfg["nrf"])
    step, val = hours.nrf_step(paper, 32, 2000), hours.nrf_pass(paper, 907, 15724)
    # 20 epochs to the best + patience 5 = 25 epochs of 282 steps, a validation pass after each
    assert rows[0]["steps"] == 25 * 282 and rows[0]["pflop"] == pytest.approx((7050 * step + 25 * val) / 1e15)
    assert step / 1e12 == pytest.approx(38.77, abs=0.01) and val / 1e15 == pytest.approx(2.88, abs=0.01)
    # N = 20: one step of 20 images an epoch; 3 finetunes + scratch, each 25 steps and 25 validations
    cell = rows[1]
    assert cell["steps"] == 4 * 25 and cell["evals"] == 4 * 25 + 4
    assert len(rows) == 2  # tables cost no GPU
    capped = hours.job_costs(jobs[:1], cfg, best_epochs=None)[0]
    assert capped["steps"] == 100_000 and capped["evals"] == math.ceil(100_000 / 282)
    # a job that asks for a GPU in a rule the estimate does not cost stops it, instead of dropping out of the total
    unknown = hours.read_jobs("rule new_gpu_rule:\n    wildcards: subject=subj01\n    resources: gpu=1\n"
                              "rule cpu_rule:\n    resources: tmpdir=/tmp, mem_mb=100\n")
    assert hours.job_costs(unknown[1:], cfg, best_epochs=20) == []
    with pytest.raises(ValueError, match="new_gpu_rule.*gpu=1"):
        hours.job_costs(unknown, cfg, best_epochs=20)


def test_gpu_hours_costs_every_gpu_job_of_the_nsd_dag(tmp_path):
    """The recorded estimate's job list is today's: a dry run of all_tables on NSD at the paper's settings
    has the jobs gpu_hours.json counts, and every job that declares a GPU is costed."""
    hours = _load("gpu_hours")
    jobs = hours.read_jobs(hours.dry_run(hours.REPO))
    recorded = json.loads((hours.REPO / "benchmarks/gpu_hours.json").read_text())
    assert dict(Counter(job.rule for job in jobs)) == recorded["jobs_per_rule"], (
        "the NSD DAG changed since benchmarks/gpu_hours.md was written: rerun "
        "`python benchmarks/gpu_hours.py --out benchmarks/gpu_hours.md --json benchmarks/gpu_hours.json`")
    gpu_rules = {job.rule for job in jobs if job.gpus}
    assert {"train_encoder", "adapt_cell", "ablation_architecture"} <= gpu_rules
    rows = hours.job_costs(jobs, hours.load_config(hours.REPO), best_epochs=20)
    assert gpu_rules <= {r["rule"] for r in rows}


def test_decoded_metrics_times_both_routes_of_each_part(tmp_path):
    bench = _load("decoded_metrics")
    out = tmp_path / "d.md"
    bench.main(["--images", "3", "--repeats", "1", "--out", str(out)])
    text = out.read_text()
    assert "| resize 32 -> 256 -> 425 |" in text and "| SSIM of every pair |" in text and "**both**" in text
    # the baseline route is the old code: the same values as the library's route
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    assert np.array_equal(bench.channels_first_resize(x, 425), bench.im.resize(x, 425))


def test_default_run_reports_the_machine_speed_beside_the_wall_time(monkeypatch, tmp_path, capsys):
    # runs at different hours compare through the wall time in calibration steps
    bench = _load("default_run")
    runs = tmp_path / "runs" / "adapt_cell"
    runs.mkdir(parents=True)
    (runs / "a.tsv").write_text("s\th:m:s\tmax_rss\n120.0\t0:02:00\t800\n")
    speeds = iter([20.0, 30.0])
    monkeypatch.setattr(bench, "calibrate", lambda: next(speeds))
    monkeypatch.setattr(bench, "run_default", lambda cores, target, configfile: (runs.parent, 600.0, 1100.0))
    bench.main(["--run"])
    out = capsys.readouterr().out
    assert "20.0 ms before the run, 30.0 ms after" in out
    assert "**24,000 steps' worth**" in out  # 600 s / 25 ms


def test_calibration_times_a_real_training_step():
    ms = _load("default_run").calibrate(steps=3)
    assert 1.0 < ms < 5000.0


def test_training_startup_alternates_routes_and_reports_the_ratio(monkeypatch, tmp_path):
    bench = _load("training_startup")
    order = []
    cost = {"torch.optim": (6.0, 5.0, "dynamo"), "nrf.training.optim": (4.0, 2.5, "no dynamo")}
    monkeypatch.setattr(bench, "one_process", lambda route: order.append(route) or cost[route])
    res = bench.main(["--repeats", "3", "--out", str(tmp_path / "s.md")])
    assert order[1:] == ["torch.optim", "nrf.training.optim"] * 3  # a warm-up, then alternating
    text = (tmp_path / "s.md").read_text()
    assert "**2.00x** less CPU per process (2.50 s saved)" in text and "| nrf.training.optim | 4.00 | 2.50 |" in text
    assert res["torch.optim"]["dynamo"] == "dynamo"
