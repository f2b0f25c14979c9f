"""The simulator's fine-scale option and the continuous-space experiment on tiny data.

- ``fine_scale_mm`` adds shared structure below the voxel size: it changes the field
  at short range, the same way for every subject; off (the default) the tree is the
  same bytes as without the option, and ``parameters.json`` does not name it.
- subjects' func grids sit at different sub-voxel offsets in MNI.
- the experiment's scoring (held-out points away from voxel centres, paired gaps) and
  one tiny end-to-end sweep with its CSV, Markdown and figure.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.colors import to_hex
from scipy.spatial import cKDTree

from nrf.config import validate_config
from nrf.frames import read_frame
from nrf.data import nsd_layout
from nrf.data.sim_model import (
    FourierField,
    SimulatedBrain,
    SimulationParams,
    sample_in_nsdgeneral,
    subject_geometry,
)
from nrf.data.simulate import simulate_nsd_tree
from nrf.experiments import continuous as C
from nrf.reporting import style
from nrf.reporting.fig_continuous_space import continuous_space_figure
from nrf.reporting.style import save_figure

REPO = Path(__file__).resolve().parents[2]

TINY_SIM = {"n_train_images": 40, "n_test_images": 20, "repeats": 2, "trials_per_session": 60, "image_size": 32}


def _lines(fig) -> dict[str, str]:
    """{legend label: colour} of the figure's labelled error-bar lines, in legend order."""
    handles, labels = fig.axes[0].get_legend_handles_labels()
    return {label: to_hex(handle.lines[0].get_color()).upper() for handle, label in zip(handles, labels)}


def _bytes_digest(root):
    h = hashlib.sha256()
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _short_range_corr(brain, subject, d_mm, n=1500):
    pts = sample_in_nsdgeneral(np.random.default_rng(1), n, margin=0.0)
    step = np.random.default_rng(2).normal(size=pts.shape)
    step *= d_mm / np.linalg.norm(step, axis=1, keepdims=True)
    ids = np.arange(100)
    a, b = brain.responses(ids, pts, subject), brain.responses(ids, pts + step, subject)
    a, b = a - a.mean(0), b - b.mean(0)
    return float(((a * b).sum(0) / np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))).mean())


def test_fine_option_off_is_the_same_bytes(tmp_path):
    simulate_nsd_tree(tmp_path / "a", subjects=["subj01"], seed=1, **TINY_SIM)
    simulate_nsd_tree(tmp_path / "b", subjects=["subj01"], seed=1, fine_scale_mm=None, fine_amplitude=3.0,
                      **TINY_SIM)
    assert _bytes_digest(tmp_path / "a") == _bytes_digest(tmp_path / "b")
    params = json.loads((tmp_path / "a" / "simulation" / "parameters.json").read_text())["parameters"]
    assert not {"fine_scale_mm", "fine_amplitude"} & set(params)
    # on: only the field changes (same images, design and grids), and parameters.json says so
    simulate_nsd_tree(tmp_path / "c", subjects=["subj01"], seed=1, fine_scale_mm=2.5, **TINY_SIM)
    params = json.loads((tmp_path / "c" / "simulation" / "parameters.json").read_text())["parameters"]
    assert params["fine_scale_mm"] == 2.5 and params["fine_amplitude"] == 1.0
    for rel in (nsd_layout.STIMULI, nsd_layout.EXPDESIGN):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "c" / rel).read_bytes()
    assert _bytes_digest(tmp_path / "a") != _bytes_digest(tmp_path / "c")


def test_fine_option_changes_the_field_at_short_range_for_every_subject():
    subjects = ["subj01", "subj02"]
    smooth = SimulatedBrain(SimulationParams(subjects=subjects))
    fine = SimulatedBrain(SimulationParams(subjects=subjects, fine_scale_mm=2.5))
    for s in subjects:
        c_smooth, c_fine = _short_range_corr(smooth, s, 4.0), _short_range_corr(fine, s, 4.0)
        # measured: smooth 0.97, fine 2.5 mm ~0.6 at one voxel's distance
        assert c_smooth > 0.95 and c_fine < 0.8, (s, c_smooth, c_fine)
    # shared: in template space the fine part is one field (subject-free population truth equal
    # up to the individual part); the fine fields of the two subjects' brains are the same object
    pts = sample_in_nsdgeneral(np.random.default_rng(3), 200, margin=0.0)
    np.testing.assert_array_equal(fine.fine(pts), SimulatedBrain(SimulationParams(subjects=["subj05"],
                                                                                  fine_scale_mm=2.5)).fine(pts))
    assert fine.weights(pts).shape == (200, 9)
    with pytest.raises(ValueError, match="fine_scale_mm"):
        SimulationParams(fine_scale_mm=0.0)
    with pytest.raises(ValueError, match="fine_amplitude"):
        SimulationParams(fine_scale_mm=2.0, fine_amplitude=float("nan"))


def test_fourier_field_has_the_asked_variance_and_length_scale():
    f = FourierField(np.random.default_rng(0), 4096, 3.0, 2, scale=2.0)
    x = np.random.default_rng(1).uniform(-50, 50, size=(4000, 3))
    v = f(x)
    assert v.var(0) == pytest.approx([4.0, 4.0], rel=0.15)
    d = np.array([3.0, 0.0, 0.0])
    corr = np.mean([np.corrcoef(f(x)[:, k], f(x + d)[:, k])[0, 1] for k in range(2)])
    assert corr == pytest.approx(np.exp(-0.5), abs=0.08)  # exp(-d^2 / 2 l^2) at d = l


def test_subjects_grids_sit_at_different_sub_voxel_offsets():
    geos = {s: subject_geometry(0, s) for s in ("subj01", "subj02", "subj05", "subj07")}
    centres = {s: g["mni"].reshape(-1, 3) for s, g in geos.items()}
    # voxel centres inside a box of the occipital cortex

    def box(p):
        return p[np.all((p > [-40, -100, -20]) & (p < [40, -60, 10]), axis=1)]

    trees = {s: cKDTree(box(c)) for s, c in centres.items()}
    a = box(centres["subj01"])
    for s in ("subj02", "subj05", "subj07"):
        dist = trees[s].query(a)[0]
        # coincident grids would put every centre within ~0 mm; offset ones spread up to half a diagonal
        assert np.mean(dist < 0.5) < 0.05 and np.median(dist) > 1.0, (s, np.median(dist))
    # together the grids sample space more densely than one grid
    pts = np.random.default_rng(0).uniform([-30, -95, -15], [30, -65, 5], size=(5000, 3))
    one = trees["subj01"].query(pts)[0].mean()
    union = cKDTree(np.concatenate([box(c) for c in centres.values()])).query(pts)[0].mean()
    assert union < 0.7 * one, (union, one)


def test_between_voxels_and_scoring():
    rng = np.random.default_rng(0)
    ijk = np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1).reshape(-1, 3)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    voxels = ijk * 4.0
    pts = rng.uniform(4, 16, size=(300, 3))
    kept = C.between_voxels(pts, voxels, 1.0)
    assert len(kept) < len(pts) and cKDTree(voxels).query(kept)[0].min() >= 1.0
    # a smooth truth: a linear function of position per image
    slope = rng.normal(size=(12, 3))

    def truth(p):
        return slope @ p.T

    noisy_voxels = truth(voxels) + 8.0 * rng.normal(size=(12, len(voxels)))
    rows = C.score_methods(truth(kept), truth(voxels),
                           queried={C.NRF_ONE: (truth(kept), truth(voxels))},
                           voxel_locked={C.NRF_TRILINEAR: noisy_voxels, C.TRUTH_TRILINEAR: truth(voxels)},
                           voxel_ijk=ijk, grid_affine=affine, points=kept)
    by = {r["method"]: r for r in rows}
    assert by[C.NRF_ONE]["r_mean"] == pytest.approx(1.0)
    assert by[C.TRUTH_TRILINEAR]["r_mean"] == pytest.approx(1.0, abs=1e-4)  # trilinear is exact on a linear field
    assert by[C.NRF_TRILINEAR]["r_mean"] < 0.99
    gap = by[C.NRF_ONE]["gap_vs_trilinear"]
    assert gap == pytest.approx(by[C.NRF_ONE]["r_mean"] - by[C.NRF_TRILINEAR]["r_mean"], abs=1e-5)
    assert 0 < by[C.NRF_ONE]["gap_sem"] < gap
    assert np.isnan(by[C.TRUTH_TRILINEAR]["gap_vs_trilinear"])


def test_tiny_sweep_end_to_end(tmp_path):
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "schemas/config.schema.yaml")
    nrf = dict(config["nrf"], merger_token_dim=4, merger_dim=16, depth=2, width=16, fourier_scale=32.0)
    train = dict(config["train"], batch_images=8, batch_voxels=64, max_steps=20, min_steps=0, eval_every=10,
                 patience=2, device="cpu", precision="fp32")
    table = C.run_continuous(
        simulation=dict(config["simulation"], **TINY_SIM), subjects=["subj02", "subj01"], target="subj01",
        seeds=[1], fine_scales=[None, 2.5], fine_amplitude=1.0, nrf_options=nrf, train_options=train,
        linear_options=dict(config["linear"], epochs=3, device="cpu"), pooled_options=dict(train, max_steps=30),
        finetune_options=dict(train, max_steps=10, patience=None), features_options=config["features"],
        extractor="filterbank", max_points=300, workdir=tmp_path / "work", log=logging.getLogger("test"))
    assert list(table.columns) == list(C.COLUMNS)
    assert len(table) == 2 * len(C.METHODS)
    assert set(table["field"]) == {"smooth", "fine 2.5 mm"}
    assert table["r_mean"].between(-1, 1).all() and (table["n_points"] > 50).all()
    truth = table[table["method"] == C.TRUTH_TRILINEAR].set_index("field")["r_mean"]
    assert truth["smooth"] > 0.98 and truth["fine 2.5 mm"] < truth["smooth"]  # one grid misses the fine part
    assert table.loc[table["method"] == C.NRF_POOLED, "gap_vs_trilinear"].notna().all()
    # the code's wavelengths at scale 32 (fourier_seed 0): 13 mm and longer, recorded on every row
    assert table["code_wavelength_min_mm"].round(1).eq(13.3).all()
    assert (table["code_wavelength_median_mm"] > table["code_wavelength_min_mm"]).all()
    out = {k: tmp_path / f"continuous.{k}" for k in ("csv", "md", "png", "pdf")}
    C.write_outputs(table, out_csv=out["csv"], out_md=out["md"])
    assert not out["png"].exists()  # the figure is the reporting module's
    fig = continuous_space_figure(table)
    legend = _lines(fig)
    assert list(legend) == [style.display_name(m) for m in C.METHODS]
    assert all(legend[style.display_name(m)] == style.colour(m) for m in C.METHODS)
    save_figure(fig, out["png"], out["pdf"])
    back = read_frame(out["csv"], "table")
    assert list(back["method"].unique()) == list(C.METHODS)
    md = out["md"].read_text()
    assert "| method | smooth | fine 2.5 mm |" in md and "This run:" in md
    assert "sinusoids of wavelength 13.3 mm and longer" in md
    assert out["png"].stat().st_size > 10_000 and out["pdf"].read_bytes().startswith(b"%PDF")
    summ = C.summarise(table)
    assert set(summ["sem_over"]) == {"points"}
