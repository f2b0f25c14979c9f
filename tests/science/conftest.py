"""One simulated subject shared by the science tests: a 400-image tree,
prepared under the clean protocol, with filter-bank features (config.yaml's
CPU-sized settings, seed 0). Built once per session; each test trains its own
models on it."""

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


@pytest.fixture(scope="session")
def simulated_subject(tmp_path_factory):
    """config, tmp, root (the tree), sim (simulation settings), prepared, features."""
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    tmp = tmp_path_factory.mktemp("science")
    root = tmp / "tree"
    sim = dict(config["simulation"], n_train_images=400, trials_per_session=300)
    simulate_nsd_tree(root, subjects=[SUBJECT], seed=0, **sim)
    prepared = tmp / f"{SUBJECT}.hdf5"
    prepare_subject(root, SUBJECT, sessions=[1, 2, 3, 4, 5], protocol="clean", val_fraction=0.1, seed=0,
                    out_path=prepared)
    features = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"], stimuli_path=root / nsd_layout.STIMULI,
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={SUBJECT: 5}, trials_per_session=300,
                        out_path=features, device="cpu", log=logging.getLogger("science"))
    return SimpleNamespace(config=config, tmp=tmp, root=root, sim=sim, prepared=prepared, features=features)
