"""Config validation: defaults from the schema, presets, clear errors."""

from pathlib import Path

import pytest
import yaml

from nrf.config import ConfigError, sessions_for, validate_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_resolves_simulated_preset(default_config):
    config = validate_config(default_config)
    assert config["features"]["extractor"] == "filterbank"
    assert config["nrf"]["width"] == 128
    # a key the preset leaves out comes from the schema default
    assert config["train"]["alpha"] == pytest.approx(0.1)
    assert config["nsd"]["betas_source"] == "hdf5_ranges"


def test_dataset_nsd_switches_to_paper_sizes(default_config):
    config = validate_config({**default_config, "dataset": "nsd"})
    assert config["features"]["extractor"] == "clip_vitb16"
    assert (config["nrf"]["depth"], config["nrf"]["width"]) == (8, 4096)
    assert (config["train"]["batch_images"], config["train"]["batch_voxels"]) == (32, 2000)
    assert len(sessions_for(config, "subj05")) == 40
    assert len(sessions_for(config, "subj07")) == 40


def test_top_level_section_overrides_preset(default_config):
    config = validate_config({**default_config, "nrf": {"width": 64}})
    assert config["nrf"]["width"] == 64
    assert config["nrf"]["depth"] == 4


def test_simulated_sessions_follow_trial_count(default_config):
    config = validate_config(default_config)
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
    ],
)
def test_bad_config_names_key_and_allowed_values(default_config, change, expected):
    with pytest.raises(ConfigError) as error:
        validate_config({**default_config, **change})
    for fragment in expected:
        assert fragment in str(error.value)


def test_clean_protocol_shrinks_the_training_set(default_config):
    # 1000 training images less a 10% validation split leave 900
    with pytest.raises(ConfigError, match="900"):
        validate_config({**default_config, "protocol": "clean", "shots": [950]})
