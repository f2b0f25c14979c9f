"""The claims run's keys (issue 23): probes.draws, probes.shuffle_nrf (and its
training-set fit), ablations.seeds; their schema, the probe's fit table, the
seed-replicated Tables 5-6 and how the claims page decides with them."""

import copy
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from nrf.config import ConfigError, validate_config
from nrf.data import nsd_layout
from nrf.data.prepare import prepare_subject
from nrf.data.simulate import simulate_nsd_tree
from nrf.experiments.ablations import training_summary
from nrf.experiments.probes import (
    FIT_COLUMNS,
    LINEAR,
    run_shuffle_cell,
    run_shuffle_fit_cell,
    write_fit_rows,
)
from nrf.features.pipeline import extract_seen_images
from nrf.checks import CorruptFileError, write_json
from nrf.frames import FrameError, read_frame, write_frame
from nrf.perturbations import GLOBAL, INTACT, WITHIN_ROI
from nrf.reporting import claims as C
from nrf.reporting.ablation_tables import write_architecture_table

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas/config.schema.yaml"
PAPER = REPO / "reference" / "nrf_paper_tables.csv"
TINY_SIM = {"n_train_images": 40, "n_test_images": 20, "repeats": 2, "trials_per_session": 60, "image_size": 32}


def _default() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _with(overrides: dict) -> dict:
    """config.yaml with ``overrides`` merged key by key, as --configfile merges (Snakemake's update_config)."""
    config = _default()
    update_config(config, copy.deepcopy(overrides))
    return config


# -- schema ----------------------------------------------------------------------------------
def test_new_keys_are_absent_by_default():
    config = validate_config(_default(), SCHEMA)
    assert "draws" not in config["probes"] and "shuffle_nrf" not in config["probes"]
    assert "seeds" not in config["ablations"] and "min_steps" not in config["ablations"]
    assert "shuffle_max_steps" not in config["probes"] and "shuffle_min_steps" not in config["probes"]


def test_claims_yaml_sets_every_new_key():
    config = validate_config(_with(yaml.safe_load((REPO / "configs/claims.yaml").read_text())), SCHEMA)
    # more draws than the default's 2, and than the cells', for the MNI shift at N = 20
    assert config["probes"]["draws"] > max(2, config["adaptation"]["draws"])
    assert isinstance(config["probes"]["shuffle_nrf"], dict)  # set: the shuffle probe writes its fit
    assert len(config["ablations"]["seeds"]) >= 3  # a spread for every depth / width row (science tests: 3 seeds)
    # depth 16 sat flat for 300-400 steps at 2 of 3 seeds and patience ended it (benchmarks/claims_run.md)
    assert config["ablations"]["min_steps"] >= 1000
    # the shuffle probe's model tells voxels apart by their coordinates (benchmarks/shuffle_capacity.md):
    # a coordinate code of short wavelengths, and steps for it to learn at N = 800 (3,300-4,150 there)
    probes = config["probes"]
    assert probes["shuffle_nrf"]["fourier_scale"] >= 64 and probes["shuffle_max_steps"] > 4150
    assert 0 < probes["shuffle_min_steps"] < probes["shuffle_max_steps"]
    # the other probe keys survive the merge
    assert config["probes"]["subject"] == "subj01" and config["probes"]["shift_mm"] == 20.0


def test_shuffle_nrf_fills_no_defaults():
    # a partial override stays partial: the nrf section's schema defaults (width 4096, ...) are not filled in
    config = validate_config(_with({"probes": {"shuffle_nrf": {"fourier_scale": 64}}}), SCHEMA)
    assert config["probes"]["shuffle_nrf"] == {"fourier_scale": 64}
    assert validate_config(_with({"probes": {"shuffle_nrf": {}}}), SCHEMA)["probes"]["shuffle_nrf"] == {}


@pytest.mark.parametrize("overrides, key", [
    ({"probes": {"draws": 0}}, "probes.draws"),
    ({"probes": {"draws": 2.5}}, "probes.draws"),
    ({"probes": {"draws": "many"}}, "probes.draws"),
    ({"probes": {"shuffle_nrf": {"width": 0}}}, "probes.shuffle_nrf.width"),
    ({"probes": {"shuffle_nrf": {"depth": 1}}}, "probes.shuffle_nrf.depth"),
    ({"probes": {"shuffle_nrf": {"fourier_scale": -1.0}}}, "probes.shuffle_nrf.fourier_scale"),
    ({"probes": {"shuffle_nrf": {"widht": 512}}}, "probes.shuffle_nrf"),
    ({"probes": {"shuffle_nrf": 512}}, "probes.shuffle_nrf"),
    ({"ablations": {"seeds": []}}, "ablations.seeds"),
    ({"ablations": {"seeds": [0, 0]}}, "ablations.seeds"),
    ({"ablations": {"seeds": [-1]}}, "ablations.seeds[0]"),
    ({"ablations": {"seeds": [0.5]}}, "ablations.seeds[0]"),
    ({"ablations": {"seeds": 3}}, "ablations.seeds"),
    ({"ablations": {"min_steps": -1}}, "ablations.min_steps"),
    ({"probes": {"shuffle_max_steps": 0}}, "probes.shuffle_max_steps"),
    ({"probes": {"shuffle_max_steps": 1.5}}, "probes.shuffle_max_steps"),
    ({"probes": {"shuffle_min_steps": -1}}, "probes.shuffle_min_steps"),
    ({"probes": {"shuffle_min_steps": "long"}}, "probes.shuffle_min_steps"),
    ({"ablations": {"min_steps": "long"}}, "ablations.min_steps"),
    ({"presets": {"simulated": {"ablations": {"seeds": [1, 1]}}}}, "presets.simulated.ablations.seeds"),
])
def test_bad_values_stop_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(f"config key '{key}'")):
        validate_config(_with(overrides), SCHEMA)


def test_values_from_the_command_line_are_coerced():
    # --config 'probes={draws: 10}' hands nested numbers over as text
    config = validate_config(_with({"probes": {"draws": "10", "shuffle_nrf": {"width": "512"}}}), SCHEMA)
    assert config["probes"]["draws"] == 10 and config["probes"]["shuffle_nrf"]["width"] == 512


# -- the shuffle probe's fit ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_subject(tmp_path_factory):
    """One tiny simulated subject, prepared under the paper protocol, with filter-bank features."""
    tmp = tmp_path_factory.mktemp("claims_keys")
    config = validate_config(_default(), SCHEMA)
    root = tmp / "tree"
    simulate_nsd_tree(root, subjects=["subj01"], seed=0, **TINY_SIM)
    prepared = tmp / "subj01.hdf5"
    prepare_subject(root, "subj01", sessions=[1, 2], protocol="paper", seed=0, out_path=prepared)
    features = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"], stimuli_path=root / nsd_layout.STIMULI,
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={"subj01": 2},
                        trials_per_session=TINY_SIM["trials_per_session"], out_path=features, device="cpu",
                        log=logging.getLogger("test"))
    nrf = dict(config["nrf"], merger_token_dim=4, merger_dim=16, depth=2, width=16)
    train = dict(config["train"], batch_images=8, batch_voxels=64, max_steps=20, min_steps=0, patience=2)
    return {"prepared": prepared, "features": features, "nrf": nrf, "train": train,
            "linear": dict(config["linear"], epochs=3), "atlases": config["probes"]["shuffle_atlases"]}


def test_shuffle_fit_cell_trains_the_given_width_and_leaves_the_probe_numbers_alone(tiny_subject, tmp_path):
    t = tiny_subject
    common = {"protocol": "paper", "seed": 0, "train_options": t["train"], "scratch_steps": 12,
              "atlases": t["atlases"]}
    wide = {**t["nrf"], "width": 24, "fourier_scale": 64.0}  # probes.shuffle_nrf merged over nrf
    plain = run_shuffle_cell(t["prepared"], t["features"], 20, 0, model_options=wide, **common)
    rows, fit = run_shuffle_fit_cell(t["prepared"], t["features"], 20, 0, model_options=wide,
                                     linear_options=t["linear"], **common)
    pd.testing.assert_frame_equal(rows, plain)  # the fit check does not move the probe's numbers
    assert list(fit.columns) == list(FIT_COLUMNS)
    nrf = fit[fit["model"] == "NRF"].set_index("condition")
    assert list(nrf.index) == [INTACT, GLOBAL, WITHIN_ROI]
    assert (nrf["width"] == 24).all() and (nrf["fourier_scale"] == 64.0).all()
    assert nrf["test_pearson"].tolist() == pytest.approx(rows["pearson"].tolist())
    linear = fit[fit["model"] == LINEAR]
    assert len(linear) == 1 and linear["condition"].iloc[0] == "voxel-wise" and np.isnan(linear["width"].iloc[0])
    assert fit["train_pearson"].between(-1, 1).all() and (fit["n_train"] == 20).all() and (fit["draw"] == 0).all()
    write_fit_rows(fit, tmp_path / "n20_fit.csv")
    back = read_frame(tmp_path / "n20_fit.csv", "shuffle_fit")
    assert list(back.columns) == list(FIT_COLUMNS) and len(back) == 4
    with pytest.raises(ValueError, match="lacks"):
        write_fit_rows(fit.drop(columns="train_pearson"), tmp_path / "bad.csv")
    # the default model options train the default width (the probe without probes.shuffle_nrf)
    _, fit = run_shuffle_fit_cell(t["prepared"], t["features"], 20, 0, model_options=t["nrf"],
                                  linear_options=t["linear"], conditions=(INTACT,), **common)
    assert fit.loc[fit["model"] == "NRF", "width"].tolist() == [16]


def test_shuffle_min_steps_defers_early_stopping(tiny_subject):
    from nrf.experiments.cell import schedule

    train = {"batch_images": 8, "patience": 2, "min_steps": 300, "max_steps": 3000}
    assert schedule("paper", 20, train, 12) == dict(train, eval_every=3, patience=2, min_steps=0, max_steps=12)
    assert schedule("paper", 20, train, 12, 8)["min_steps"] == 8
    assert schedule("paper", 20, train, 12, 50)["min_steps"] == 12  # lowered to the cap
    assert schedule("clean", 20, train, 12, 8)["min_steps"] == 0  # a fixed budget has no early stop to defer
    t = tiny_subject
    common = {"protocol": "paper", "seed": 0, "train_options": t["train"], "scratch_steps": 30,
              "atlases": t["atlases"], "model_options": t["nrf"], "conditions": (INTACT, GLOBAL)}
    free = run_shuffle_cell(t["prepared"], t["features"], 20, 0, **common)
    held = run_shuffle_cell(t["prepared"], t["features"], 20, 0, min_steps=24, **common)
    assert (free["steps"] < 24).any()  # patience 2 of 3-step epochs ends some run early...
    assert (held["steps"] >= 24).all()  # ...and none before shuffle_min_steps


# -- Tables 5-6 with seed replicates -------------------------------------------------------------
def _scores(path, r):
    write_frame(pd.DataFrame({"voxel": np.arange(len(r)), "pearson": r, "mse": 0.5 - r / 2}), path, "scores")
    return path


def _training(path, points, max_steps):
    write_json(path, training_summary([{"step": s, "val_median_r": r} for s, r in points], max_steps))
    return path


def test_depth_table_with_seeds_shows_mean_sem_and_sd(tmp_path, rng):
    depths, seeds = [2, 4, 8], [0, 1, 2]
    medians = {(d, s): 0.3 + 0.01 * d / 2 + 0.004 * s for d in depths for s in seeds}
    scores, trainings = [], []
    for d in depths:  # value-major, seed-minor: rules/common.smk's architecture_files
        for s in seeds:
            r = medians[d, s] + np.linspace(-0.1, 0.1, 41)  # median over voxels: medians[d, s]
            scores.append(_scores(tmp_path / f"d{d}_s{s}.csv", rng.permutation(r)))
            rising = d == 8 and s == 1
            points = [(100, 0.1), (200, 0.2), (300, 0.3)] if rising else [(100, 0.1), (200, 0.3), (300, 0.2)]
            trainings.append(_training(tmp_path / f"d{d}_s{s}.json", points, 300))
    out = {k: tmp_path / f"t5.{k}" for k in ("csv", "md", "html")}
    kwargs = {"paper_csv": PAPER, "subject": "subj01", "protocol": "paper", "dataset": "simulated",
              "test_images": "seen_by_all", "fixed": {"width": 128}, "max_steps": 300, "out_csv": out["csv"],
              "out_md": out["md"], "out_html": out["html"]}
    table = write_architecture_table("table5", "depth", depths, scores, trainings=trainings, seeds=seeds, **kwargs)
    row = table.set_index("depth").loc[4]
    per_seed = np.array([medians[4, s] for s in seeds])
    assert row["n_seeds"] == 3
    assert row["pearson_mean"] == pytest.approx(per_seed.mean(), abs=1e-9)
    assert row["pearson_sd"] == pytest.approx(per_seed.std(ddof=1), abs=1e-9)
    assert row["pearson_sem"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(3), abs=1e-9)
    assert table["improving_at_cap"].tolist() == [False, False, True]
    assert table["seeds_at_cap"].tolist() == [0, 0, 1]
    md = out["md"].read_text()
    assert "mean ± SEM over 3 seeds" in md and "Pearson SD over seeds" in md and "NRF depth 8 (1 of 3 seeds)" in md
    assert f"{row['pearson_mean']:.3f} ± {row['pearson_sem']:.3f}" in md
    back = read_frame(out["csv"], "table")
    assert np.isfinite(back["pearson_sem"]).all() and np.isfinite(back["pearson_sd"]).all()
    # one score file too few for 3 depths x 3 seeds
    with pytest.raises(ValueError, match="3 seeds"):
        write_architecture_table("table5", "depth", depths, scores[:-1], seeds=seeds, **kwargs)
    # without seeds the same call is the one-training table (no spread, no seed columns)
    plain = write_architecture_table("table5", "depth", depths, scores[::3], trainings=trainings[::3], **kwargs)
    assert plain["pearson_sem"].isna().all() and "pearson_sd" not in plain and "n_seeds" not in plain
    assert "one training per row, so no SEM" in out["md"].read_text()


# -- the claims page -------------------------------------------------------------------------------
def _write(root: Path, rel: str, rows) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_frame(pd.DataFrame(rows), path, "table", float_format=None)  # as the rules write a table


def _seed_table(root, axis, name, rows):
    _write(root, f"tables/{name}.csv", [
        {"method": f"NRF {axis} {v}", axis: v, "n_draws": 1, "n_seeds": 3, "pearson_mean": m, "pearson_sem": s,
         "pearson_sd": s * np.sqrt(3), "improving_at_cap": False} for v, m, s in rows])


def test_architecture_claims_decide_with_the_seed_spread(tmp_path):
    # depth 8 (the paper's best) against 4 and 16: within 2 SEM of 4, far above 16
    _seed_table(tmp_path, "depth", "table5", [(4, 0.390, 0.004), (8, 0.395, 0.004), (16, 0.300, 0.004)])
    f = C._architecture(tmp_path, "table5", "depth", 8)
    assert [c.verdict for c in f.comparisons] == [C.UNDECIDED, C.HOLDS]
    assert f.verdict == "partly holds (1 of 2)"
    assert "equal within ±2 SEM: depth 8 − depth 4: [-0.006, +0.016]" in f.note
    assert "± 0.004 (mean ± SEM over 3 seeds)" in f.numbers and "SEM over 3 seeds, unpaired" in f.numbers
    # scaled-down widths, rank-matched: 128 plays 4096 and beats both beyond 2 SEM
    _seed_table(tmp_path, "width", "table6", [(64, 0.35, 0.002), (128, 0.38, 0.002), (256, 0.36, 0.002)])
    assert C._architecture(tmp_path, "table6", "width", 4096).verdict == C.HOLDS
    # the same tables without n_seeds and SEM are the default run's: no spread
    _write(tmp_path, "tables/table6.csv", [
        {"method": f"NRF width {w}", "width": w, "n_draws": 1, "pearson_mean": m, "pearson_sem": np.nan}
        for w, m in ((64, 0.35), (128, 0.38), (256, 0.36))])
    f = C._architecture(tmp_path, "table6", "width", 4096)
    assert f.verdict == C.NO_SPREAD and "seeds" not in f.numbers


def _fig4(root):
    _write(root, "figures/fig4.csv", [
        {"panel": "a", "condition": c, "n_train": n, "n_draws": 3, "pearson_mean": m, "pearson_sem": 0.005}
        for n in (20, 800) for c, m in ((INTACT, 0.4), (GLOBAL, 0.1 if n == 20 else 0.2), (WITHIN_ROI, 0.3))])


def _fits(root, n, shuffled_test, linear_test, draws=3):
    rows = []
    for d in range(draws):
        for condition, r in ((INTACT, shuffled_test + 0.1), (GLOBAL, shuffled_test)):
            rows.append({"subject": "subj01", "n_train": n, "draw": d, "model": "NRF", "condition": condition,
                         "width": 128, "fourier_scale": 64.0, "train_pearson": 0.4, "test_pearson": r + 0.01 * d,
                         "steps": 100})
        rows.append({"subject": "subj01", "n_train": n, "draw": d, "model": LINEAR, "condition": "voxel-wise",
                     "width": np.nan, "fourier_scale": np.nan, "train_pearson": 0.5,
                     "test_pearson": linear_test + 0.005 * d, "steps": 50})
    write_fit_rows(pd.DataFrame(rows), root / f"probes/shuffle/n{n}_fit.csv")


def test_shuffle_row_tests_voxel_identity_at_the_largest_n(tmp_path):
    _fig4(tmp_path)
    before = C._fig4(tmp_path, True)
    assert "voxel identity" not in before.numbers and before.note == ""  # no fit tables: as before
    _fits(tmp_path, 20, shuffled_test=0.01, linear_test=0.5)  # not the largest N: not read
    _fits(tmp_path, 800, shuffled_test=0.36, linear_test=0.37)
    f = C._fig4(tmp_path, True)
    assert f.verdict == C.HOLDS  # the identity test decides nothing, it qualifies
    assert ("voxel identity at N = 800 (width 128, Fourier scale 64): test r of NRF shuffled globally 0.370, "
            "voxel-wise linear 0.375; fit to the training images: NRF intact 0.400, linear 0.500") in f.numbers
    assert "mean over 3 draws" in f.numbers and "-0.005 ± 0.003" in f.numbers
    assert "learns each voxel's response from an arbitrary coordinate" in f.note
    rows = C.claim_rows(PAPER, tmp_path).set_index("claim")
    assert "N = 800" in rows.at["shuffle", "run_numbers"]
    assert "value of the coordinates" in rows.at["shuffle", "run_reason"]
    # shuffled coordinates far below a model with weights of its own per voxel: no identity learnt
    _fits(tmp_path, 800, shuffled_test=0.14, linear_test=0.37)
    f = C._fig4(tmp_path, True)
    assert "does not learn each voxel's identity" in f.note and "0.225 below" in f.note
    assert "(40% of its r; beyond 2 SEM)" in f.note and "at least in part, the model's capacity" in f.note
    _fits(tmp_path, 800, shuffled_test=0.14, linear_test=0.37, draws=1)
    assert "not decided" in C._fig4(tmp_path, True).note


def test_the_page_reads_only_what_the_run_builds(tmp_path):
    """Files another config left in the folder (a fit table, the continuous-space table) decide
    nothing when the run declares what it builds; another run's folder is read as found."""
    _fig4(tmp_path)
    _fits(tmp_path, 800, shuffled_test=0.36, linear_test=0.37)
    write_frame(pd.DataFrame([{"seed": s, "field": "fine 2 mm", "fine_scale_mm": 2.0,
                               "method": "NRF queried (pooled subjects)", "gap_vs_trilinear": 0.01 + 0.001 * s,
                               "gap_sem": 0.001} for s in range(3)]),
                tmp_path / "tables/continuous_space.csv", "table")
    declared = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.csv")
                if "fit" not in p.name and "continuous" not in p.name]
    only = C.claim_rows(PAPER, tmp_path, run_files=declared).set_index("claim")
    found = C.claim_rows(PAPER, tmp_path).set_index("claim")
    assert only.at["continuous", "run_verdict"] == C.NOT_RUN
    assert found.at["continuous", "run_verdict"] == C.HOLDS
    assert "voxel identity" not in only.at["shuffle", "run_numbers"]
    assert "voxel identity" in found.at["shuffle", "run_numbers"]
    both = C.claim_rows(PAPER, tmp_path, claims_results=tmp_path, run_files=declared).set_index("claim")
    assert both.at["continuous", "claims_verdict"] == C.HOLDS  # another run's folder: as found


def test_a_corrupt_fit_table_stops_the_claims_page_and_names_the_file(tmp_path):
    _fig4(tmp_path)
    _fits(tmp_path, 800, shuffled_test=0.36, linear_test=0.37)
    path = tmp_path / "probes/shuffle/n800_fit.csv"
    good = path.read_bytes()
    # zeros over a block of the middle: the checksum no longer matches
    middle = len(good) // 2
    path.write_bytes(good[:middle] + b"0" * 12 + good[middle + 12:])
    with pytest.raises(CorruptFileError, match=r"n800_fit\.csv.*sha256"):
        C.claim_rows(PAPER, tmp_path)
    # cut short: no checksum line
    path.write_bytes(good[: len(good) - 80])
    with pytest.raises(CorruptFileError, match=r"n800_fit\.csv.*truncated"):
        C._fig4(tmp_path, True)
    # a NaN written where a score must be: refused before it is written
    rows = pd.DataFrame([{"subject": "subj01", "n_train": 800, "draw": 0, "model": "NRF", "condition": GLOBAL,
                          "width": 128, "fourier_scale": 64.0, "train_pearson": np.nan, "test_pearson": 0.3,
                          "steps": 10}])
    with pytest.raises(FrameError, match="train_pearson"):
        write_fit_rows(rows, path)
    # a paper table that exists but does not parse is corrupt, not "not run"
    path.write_bytes(good)
    (tmp_path / "figures/fig4.csv").write_bytes(b'panel,condition\n"a,unterminated\n')
    with pytest.raises(CorruptFileError, match=r"fig4\.csv"):
        C._fig4(tmp_path, True)


def test_ablation_min_steps_defers_early_stopping_within_the_cap():
    from nrf.experiments.ablations import capped

    train = {"max_steps": 3000, "min_steps": 300, "lr": 3e-3}
    assert capped(train, None) == train and capped(train, None) is not train
    assert capped(train, 300) == dict(train, max_steps=300)
    assert capped(train, None, 1500) == dict(train, min_steps=1500)
    assert capped(train, 3000, 1500) == dict(train, min_steps=1500)
    # above train's own cap too: a depth that learns slowly gets its steps (configs/claims.yaml)
    assert capped(train, 6000, 1500) == dict(train, max_steps=6000, min_steps=1500)
    assert capped(train, 200, 1500) == dict(train, max_steps=200, min_steps=200)  # lowered to the cap


def test_shuffle_capacity_benchmark_prints_the_fit_table(tiny_subject, tmp_path, capsys):
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("shuffle_capacity", REPO / "benchmarks" / "shuffle_capacity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    t = tiny_subject
    results = tmp_path / "results"
    (results / "prepared").mkdir(parents=True)
    (results / "features").mkdir()
    shutil.copy(t["prepared"], results / "prepared" / "subj01.hdf5")
    shutil.copy(t["features"], results / "features" / "filterbank.hdf5")
    configfile = tmp_path / "tiny.yaml"
    configfile.write_text(yaml.safe_dump({
        "nrf": {k: t["nrf"][k] for k in ("merger_token_dim", "merger_dim", "depth", "width")},
        "train": {k: t["train"][k] for k in ("batch_images", "batch_voxels")}, "linear": {"epochs": 3}}))
    common = [str(results), "--configfile", str(configfile), "--n", "20", "--fourier-scale", "64"]
    assert bench.main(common + ["--max-steps", "9", "--min-steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "N = 20, draw 0, {'fourier_scale': 64.0}, cap 9, min 6" in out
    for condition in (INTACT, GLOBAL, WITHIN_ROI, "voxel-wise"):
        assert condition in out
    assert bench.main(common + ["--fixed-steps", "10", "--condition", "global"]) == 0
    out = capsys.readouterr().out
    # ten points of the fit to the training images, the last at the fixed budget
    assert "global, test r" in out and out.count(": ") >= 11 and " 10: " in out
