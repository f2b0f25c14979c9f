"""Simulated subjects for the science tests: a tree simulated at seed 0,
prepared under the clean protocol, with filter-bank features (config.yaml's
CPU-sized settings). ``build_simulation`` builds one to a test's size;
``simulated_subject`` is the 400-image subj01 two test files share, built once
per session. Each test trains its own models on them."""

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nrf.config import validate_config
from nrf.data import nsd_layout
from nrf.data.prepare import prepare_subject
from nrf.data.simulate import simulate_nsd_tree
from nrf.features.pipeline import extract_seen_images

REPO = Path(__file__).resolve().parents[2]
SUBJECT = "subj01"


def simulate_and_prepare(tmp: Path, subjects, *, sessions, **simulation) -> SimpleNamespace:
    """config, tmp, root (the tree), sim (simulation settings), prepared ({subject: path}), features.

    ``simulation`` overrides config.yaml's simulation section; every subject is
    prepared from ``sessions`` and its seen images' features are extracted."""
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    root = tmp / "tree"
    sim = dict(config["simulation"], **simulation)
    simulate_nsd_tree(root, subjects=list(subjects), seed=0, **sim)
    prepared = {s: tmp / f"{s}.hdf5" for s in subjects}
    for s in subjects:
        prepare_subject(root, s, sessions=list(sessions), protocol="clean", val_fraction=0.1, seed=0,
                        out_path=prepared[s])
    features = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"], stimuli_path=root / nsd_layout.STIMULI,
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={s: len(sessions) for s in subjects},
                        trials_per_session=sim["trials_per_session"], out_path=features, device="cpu",
                        log=logging.getLogger("science"))
    return SimpleNamespace(config=config, tmp=tmp, root=root, sim=sim, prepared=prepared, features=features)


@pytest.fixture(scope="session")
def build_simulation():
    """simulate_and_prepare, for module fixtures that need their own sizes."""
    return simulate_and_prepare


@pytest.fixture(scope="session")
def simulated_subject(tmp_path_factory):
    """subj01: 400 training images, 5 sessions of 300 trials."""
    return simulate_and_prepare(tmp_path_factory.mktemp("science"), [SUBJECT], sessions=range(1, 6),
                                n_train_images=400, trials_per_session=300)
