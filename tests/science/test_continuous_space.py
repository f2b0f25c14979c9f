"""The continuous-space experiment on a field with structure finer than the voxels, three seeds.

Each seed simulates its own four subjects (subj01, 02, 05, 07; 300 training and
50 test images seen twice; a shared fine-scale part of 3 mm at the smooth part's
RMS, against 4.0-4.6 mm voxels), trains subj01's NRF and one NRF pooled over
all four subjects' offset grids (config.yaml's CPU-sized NRF, early stopping on
the clean validation split, at most 600 / 1200 steps), and scores both between
subj01's voxels against the noiseless truth (nrf.experiments.continuous).

Asserted, because it holds in every seed: the pooled NRF queried between
subj01's voxels beats trilinear interpolation of subj01's own NRF's voxel
predictions. Measured (1 thread, r with the truth between voxels, pooled
queried vs one subject's NRF trilinear): seed 0 0.662 vs 0.560 (+0.102),
seed 1 0.703 vs 0.663 (+0.040), seed 2 0.552 vs 0.514 (+0.038); spread
+0.038 to +0.102, so the test asks for more than +0.02.

Not a direction, so not asserted as one: whether an NRF holds structure
between subj01's voxels beyond its own predictions at those voxels (queried −
its own trilinear, mean ± SEM over 2,000 points): pooled +0.0004 ± 0.0005,
+0.0001 ± 0.0004, +0.0004 ± 0.0005; one subject -0.0008 ± 0.0004,
-0.0006 ± 0.0003, +0.0003 ± 0.0006 (seeds 0, 1, 2). The pooled NRF's gain is
more data for the same smooth function, not sub-voxel structure (a Fourier
scale of 8 and a 3 mm registration error between subjects; with the
registration error and the individual field set to 0, seed 0 gave
+0.0009 ± 0.0005). The test bounds it (|gap| < 0.01), so a change that makes it appear
is seen. Every method stays below the noiseless truth at subj01's voxels
interpolated (0.889, 0.910, 0.859).
"""

import logging
from pathlib import Path

import pytest
import yaml

from nrf.config import validate_config
from nrf.experiments import continuous as C

pytestmark = pytest.mark.science

REPO = Path(__file__).resolve().parents[2]
SEEDS = (0, 1, 2)
METHODS = (C.NRF_ONE, C.NRF_TRILINEAR, C.NRF_POOLED, C.NRF_POOLED_TRILINEAR, C.TRUTH_TRILINEAR)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    train = dict(config["train"], max_steps=C.STEPS["single"], min_steps=0, device="cpu")
    return C.run_continuous(
        simulation=dict(config["simulation"], **C.SMALL_SIMULATION), subjects=config["subjects"], target="subj01",
        seeds=SEEDS, fine_scales=[3.0], fine_amplitude=1.0, nrf_options=config["nrf"], train_options=train,
        linear_options=config["linear"], pooled_options=dict(train, max_steps=C.STEPS["pooled"]),
        features_options=config["features"], methods=METHODS, workdir=tmp_path_factory.mktemp("continuous"),
        log=logging.getLogger("science"))


def test_pooled_nrf_beats_one_subjects_voxels_interpolated(sweep):
    for seed, part in sweep.groupby("seed"):
        r = part.set_index("method")["r_mean"]
        print(f"seed {seed}:", {m: round(v, 3) for m, v in r.items()})
        assert r[C.NRF_POOLED] > r[C.NRF_TRILINEAR] + 0.02, (seed, r.to_dict())
        assert r[C.TRUTH_TRILINEAR] > max(r[C.NRF_ONE], r[C.NRF_POOLED]), (seed, r.to_dict())


def test_no_nrf_holds_structure_beyond_its_voxel_predictions(sweep):
    gaps = sweep.dropna(subset=["gap_vs_trilinear"])
    print(gaps[["seed", "method", "gap_vs_trilinear", "gap_sem"]].to_string())
    assert len(gaps) == 2 * len(SEEDS)
    assert (gaps["gap_vs_trilinear"].abs() < 0.01).all(), gaps
