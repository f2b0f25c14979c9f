import argparse

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import nrf  # noqa: F401  (before any convolution: it holds the CPU kernels to AVX2, nrf.REPRODUCIBLE_MATH)
import torch  # noqa: E402


def seed_list(text: str) -> tuple[int, ...]:
    """``--science-seeds``' value: distinct integers separated by commas, e.g. 0,1,2."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        seeds = ()
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"distinct integers separated by commas, e.g. 0,1,2; got {text!r}")
    return seeds


def pytest_addoption(parser):
    parser.addoption(
        "--science-seeds", type=seed_list, default="0", metavar="SEEDS",
        help="comma-separated seeds for tests/science, e.g. 0,1,2: each seed simulates its own data and trains "
             "and draws with that seed (default 0, CI's cost; benchmarks/science_seeds.md has 0,1,2)")


@pytest.fixture
def rng():
    """A seeded generator: every test that draws numbers gets the same ones."""
    return np.random.default_rng(20251123)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every test runs torch on one intra-op thread, so a test's numbers (the
    science tests quote theirs) do not depend on the machine's core count or
    on which other test modules were collected with it. Snakemake runs started
    by the workflow tests are separate processes and set their own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
