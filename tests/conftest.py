import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator: every test that draws numbers gets the same ones."""
    return np.random.default_rng(20251123)
