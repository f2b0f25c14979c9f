"""Config validation: defaults from the schema, presets, clear errors."""

from pathlib import Path

import pytest
import yaml

from nrf.config import ConfigError, sessions_for, validate_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas/config.schema.yaml"


@pytest.fixture
def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_resolves_simulated_preset(default_config):
    config = validate_config(default_config, SCHEMA)
    assert config["features"]["extractor"] == "filterbank"
    assert config["nrf"]["width"] == 128
    # a key the preset leaves out comes from the schema default
    assert config["train"]["alpha"] == pytest.approx(0.1)
    assert config["nsd"]["betas_source"] == "hdf5_ranges"
    # a section the user leaves out is filled from the schema
    del default_config["volumes"]
    assert validate_config(default_config, SCHEMA)["volumes"]["figure_resolutions_mm"] == [1.8, 1.0]


def test_dataset_nsd_switches_to_paper_sizes(default_config):
    config = validate_config({**default_config, "dataset": "nsd"}, SCHEMA)
    assert config["features"]["extractor"] == "clip_vitb16"
    assert (config["nrf"]["depth"], config["nrf"]["width"]) == (8, 4096)
    assert (config["train"]["batch_images"], config["train"]["batch_voxels"]) == (32, 2000)
    assert len(sessions_for(config, "subj05")) == 40
    assert len(sessions_for(config, "subj07")) == 40


def test_ablations_follow_the_dataset_preset(default_config):
    """Tables 5-6 on NSD train the paper's widths to early stopping; the
    simulated default caps its scaled-down widths at 300 steps. A config file
    that names no cap (configs/nsd_paper.yaml) must not inherit the
    simulator's (it did: ablations.max_steps 300 sat at config.yaml's top level)."""
    simulated = validate_config(default_config, SCHEMA)["ablations"]
    assert simulated["widths"] == [64, 128, 256] and simulated["max_steps"] == 300
    nsd = validate_config({**default_config, "dataset": "nsd"}, SCHEMA)["ablations"]
    assert nsd["widths"] == [2048, 4096, 8192] and "max_steps" not in nsd
    paper = yaml.safe_load((REPO / "configs/nsd_paper.yaml").read_text())
    merged = {**default_config, **paper}  # Snakemake merges --configfile over config.yaml
    assert "max_steps" not in validate_config(merged, SCHEMA)["ablations"]


def test_top_level_section_overrides_preset(default_config):
    config = validate_config({**default_config, "nrf": {"width": 64}}, SCHEMA)
    assert config["nrf"]["width"] == 64
    assert config["nrf"]["depth"] == 4


def test_simulated_sessions_follow_trial_count(default_config):
    config = validate_config(default_config, SCHEMA)
    sim = config["simulation"]
    n_trials = (sim["n_train_images"] + sim["n_test_images"]) * sim["repeats"]
    assert len(sessions_for(config, "subj01")) * sim["trials_per_session"] == n_trials


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"subjects": ["subj01", "subj09"]}, ["subjects[1]", "subj09", "subj01, subj02"]),
        ({"shots": [20, 5000]}, ["shots", "5000", "1..1000"]),
        ({"simulation": {"n_train_images": -5}}, ["simulation.n_train_images", "minimum"]),
        ({"dataset": "hcp"}, ["dataset", "'hcp'", "simulated, nsd"]),
        ({"features": {"extractor": "vgg16"}}, ["features.extractor", "filterbank, clip_vitb16"]),
        ({"nrf": {"widht": 3}}, ["nrf", "widht", "width"]),
        ({"protocol": "sloppy"}, ["protocol", "paper, clean"]),
        ({"sessions": {"subj03": 40}, "dataset": "nsd"}, ["sessions.subj03", "1..32"]),
        ({"simulation": {"trials_per_session": 7}}, ["simulation.trials_per_session", "divide"]),
        ({"volumes": {"figure_resolutions_mm": [1.8]}}, ["volumes.figure_resolutions_mm", "too short"]),
        ({"volumes": {"resolution_lattice_mm": 0}}, ["volumes.resolution_lattice_mm", "minimum"]),
    ],
)
def test_bad_config_names_key_and_allowed_values(default_config, change, expected):
    with pytest.raises(ConfigError) as error:
        validate_config({**default_config, **change}, SCHEMA)
    for fragment in expected:
        assert fragment in str(error.value)


def test_clean_protocol_shrinks_the_training_set(default_config):
    # 1000 training images less a 10% validation split leave 900
    with pytest.raises(ConfigError, match="900"):
        validate_config({**default_config, "protocol": "clean", "shots": [950]}, SCHEMA)


def test_numbers_given_as_text_are_coerced(default_config):
    # what `--config 'train={lr: 0.001}'` and `--config 'shots=[20,200,800]'` hand over
    config = validate_config({**default_config, "train": {"lr": "0.001", "max_steps": "500"},
                              "shots": ["20", "200", "800"], "seed": "7"}, SCHEMA)
    assert config["train"]["lr"] == pytest.approx(0.001) and isinstance(config["train"]["lr"], float)
    assert config["train"]["max_steps"] == 500 and config["shots"] == [20, 200, 800] and config["seed"] == 7
    with pytest.raises(ConfigError, match="train.lr"):
        validate_config({**default_config, "train": {"lr": "fast"}}, SCHEMA)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"subjects": ["subj01"], "sessions": {"subj02": 3}}, ["sessions", "subj02", "not in 'subjects'"]),
        ({"train": {"min_steps": 900, "max_steps": 100}}, ["train.min_steps", "900", "max_steps"]),
        ({"nsd": {"base_url": "htp:/not a url"}}, ["nsd.base_url", "htp:/not a url"]),
        ({"train": {"voxel_sampling": "sometimes"}}, ["train.voxel_sampling", "per_image, shared"]),
        ({"test_images": "all"}, ["test_images", "seen_by_all, seen_by_subject"]),
    ],
)
def test_config_that_used_to_pass_now_stops(default_config, change, expected):
    with pytest.raises(ConfigError) as error:
        validate_config({**default_config, **change}, SCHEMA)
    for fragment in expected:
        assert fragment in str(error.value)


def test_nsd_preset_follows_the_authors_code(default_config):
    config = validate_config({**default_config, "dataset": "nsd"}, SCHEMA)
    assert config["features"]["clip_layers"] == [4, 7]  # their hidden_states[3+1], [6+1]
    assert config["nrf"]["fourier_seed"] == 42
    assert config["train"]["voxel_sampling"] == "per_image"
    assert config["test_images"] == "seen_by_all"
    paper = validate_config(yaml.safe_load((REPO / "configs/nsd_paper.yaml").read_text()), SCHEMA)
    assert paper["features"]["clip_layers"] == [4, 7] and paper["nrf"]["fourier_seed"] == 42
    assert paper["mem_mb"]["train"] >= 12000  # float16 CLIP tokens of 10,000 images, ~6 GB


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # the default simulation has (1000 + 100) x 3 / 300 = 11 sessions
        ({"sessions": {"subj01": 100}}, ["sessions.subj01", "100 sessions", "simulation has 11", "1..11"]),
        ({"decoder": {"figure_images": [0, 50, 100]}, "simulation": {"n_test_images": 50, "trials_per_session": 150}},
         ["decoder.figure_images", "[50, 100]", "n_test_images (50)", "0..49"]),
        ({"decoder": {"figure_images": [907]}, "dataset": "nsd"}, ["decoder.figure_images", "[907]", "0..906"]),
        ({"volumes": {"test_images": 1000}}, ["volumes.test_images", "1000", "n_test_images (100)", "1..100"]),
        ({"volumes": {"contrast_images": 101}}, ["volumes.contrast_images", "101", "1..100"]),
        ({"volumes": {"test_images": 950}, "dataset": "nsd"}, ["volumes.test_images", "907", "seen_by_all"]),
        ({"nrf": {"fourier_scale": float("nan")}}, ["nrf.fourier_scale", "nan", "finite"]),
        ({"train": {"lr": float("inf")}}, ["train.lr", "inf", "finite"]),
        ({"train": {"lr": "-.inf"}}, ["train.lr", "-inf", "finite"]),  # as `--config` hands it over
        ({"decoder": {"alphas": [1.0, float("nan")]}}, ["decoder.alphas[1]", "finite"]),
        ({"presets": {"simulated": {"train": {"alpha": float("nan")}}}}, ["presets.simulated.train.alpha"]),
    ],
)
def test_values_beyond_the_data_stop_before_any_job(default_config, change, expected):
    with pytest.raises(ConfigError) as error:
        validate_config({**default_config, **change}, SCHEMA)
    for fragment in expected:
        assert fragment in str(error.value)


def test_limits_that_fit_pass(default_config):
    sessions = len(sessions_for(validate_config(default_config, SCHEMA), "subj01"))
    config = validate_config({**default_config, "sessions": {"subj01": sessions},
                              "decoder": {"figure_images": [0, 99]},
                              "volumes": {"test_images": 100, "contrast_images": 100}}, SCHEMA)
    assert config["decoder"]["figure_images"] == [0, 99]
    nsd = {**default_config, "dataset": "nsd", "test_images": "seen_by_subject", "decoder": {"figure_images": [999]}}
    assert validate_config(nsd, SCHEMA)["decoder"]["figure_images"] == [999]
