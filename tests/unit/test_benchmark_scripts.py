"""The benchmark scripts a user reruns: their arithmetic and a tiny CPU run."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

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
