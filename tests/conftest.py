import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch


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
