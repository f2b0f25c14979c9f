"""Simulated subjects for the science tests, one set per seed of
``--science-seeds`` (tests/conftest.py; default 0, e.g. ``--science-seeds
0,1,2``): a tree simulated at that seed, prepared under the clean protocol,
with filter-bank features (config.yaml's CPU-sized settings).
``science_seed`` is the seed a test trains and draws with: it is
parametrised at session scope, so pytest runs every test once per seed and
a fixture that asks for it is built once per seed. ``build_simulation``
builds one to a test's size; ``simulated_subject`` is the 400-image subj01
two test files share, built once per seed per session. Each test trains its
own models on them. A direction is asserted only where it held at seeds 0, 1
and 2 (benchmarks/science_seeds.md)."""

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


def simulate_and_prepare(tmp: Path, subjects, *, sessions, seed: int = 0, **simulation) -> SimpleNamespace:
    """config, tmp, root (the tree), sim (simulation settings), seed, prepared ({subject: path}), features.

    ``simulation`` overrides config.yaml's simulation section; the tree is
    simulated at ``seed`` and every subject is prepared from ``sessions``
    (validation split drawn with ``seed``) and its seen images' features are
    extracted."""
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    root = tmp / "tree"
    sim = dict(config["simulation"], **simulation)
    simulate_nsd_tree(root, subjects=list(subjects), seed=seed, **sim)
    prepared = {s: tmp / f"{s}.hdf5" for s in subjects}
    for s in subjects:
        prepare_subject(root, s, sessions=list(sessions), protocol="clean", val_fraction=0.1, seed=seed,
                        out_path=prepared[s])
    features = tmp / "features.hdf5"
    extract_seen_images("filterbank", config["features"], stimuli_path=root / nsd_layout.STIMULI,
                        expdesign_path=root / nsd_layout.EXPDESIGN, sessions={s: len(sessions) for s in subjects},
                        trials_per_session=sim["trials_per_session"], out_path=features, device="cpu",
                        log=logging.getLogger("science"))
    return SimpleNamespace(config=config, tmp=tmp, root=root, sim=sim, seed=seed, prepared=prepared,
                           features=features)


def pytest_generate_tests(metafunc):
    if "science_seed" in metafunc.fixturenames:
        seeds = metafunc.config.getoption("--science-seeds")  # tests/conftest.py parses it
        metafunc.parametrize("science_seed", seeds, indirect=True, scope="session",
                             ids=[f"seed{s}" for s in seeds])


@pytest.fixture(scope="session")
def science_seed(request):
    """The seed of this run of the test: simulator, validation split, training and draws."""
    return request.param


@pytest.fixture(scope="session")
def build_simulation():
    """simulate_and_prepare, for module fixtures that need their own sizes."""
    return simulate_and_prepare


@pytest.fixture(scope="session")
def simulated_subject(tmp_path_factory, science_seed):
    """subj01: 400 training images, 5 sessions of 300 trials, simulated at ``science_seed``."""
    return simulate_and_prepare(tmp_path_factory.mktemp(f"science_seed{science_seed}"), [SUBJECT],
                                sessions=range(1, 6), seed=science_seed, n_train_images=400, trials_per_session=300)
