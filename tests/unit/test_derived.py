"""nrf.derived: the values the workflow and the settings table both derive from several keys."""

import copy
from pathlib import Path

import yaml

from nrf.config import validate_config
from nrf.derived import derived

REPO = Path(__file__).resolve().parents[2]


def _config(**over):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in over.items():
        raw[key] = value
    return validate_config(copy.deepcopy(raw), REPO / "schemas" / "config.schema.yaml")


def test_defaults_follow_the_adaptation_and_train_sections():
    d = derived(_config())
    assert d["probe_subjects"] == ["subj01", "subj01", "subj07"]
    assert d["probe_draws"] == 2 and d["shuffle_max_steps"] == 200 and d["shuffle_min_steps"] == 0
    assert d["ablation_max_steps"] == 300 and d["table4_n"] == 800
    assert d["universal_target"] == "subj07" and d["volume_subject"] == "subj01"
    assert d["shuffle_nrf"]["width"] == 128


def test_probe_keys_and_fallbacks():
    probes = {"subject": "subj05", "base": "subj08", "target": "subj01", "draws": 5,
              "shuffle_nrf": {"width": 256}, "shuffle_max_steps": 900, "shuffle_min_steps": 50}
    d = derived(_config(probes=probes, shots=[20, 200]))
    # subj08 is not run: the base falls back to the first subject; the target must differ from it
    assert d["probe_subjects"] == ["subj05", "subj01", "subj07"]
    assert (d["probe_draws"], d["shuffle_max_steps"], d["shuffle_min_steps"]) == (5, 900, 50)
    assert d["shuffle_nrf"]["width"] == 256 and d["shuffle_nrf"]["depth"] == 4  # merged over nrf
    assert d["table4_n"] == 200  # the largest shot when the data are smaller than finetune_n
    alone = derived(_config(subjects=["subj02"]))
    assert alone["probe_subjects"] == ["subj02", "subj02", None]
