"""Querying an NRF on MNI grids: the grid, the mask, equality with the ordinary
prediction, bounded chunks, and bad input that stops early and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np
import pytest

from nrf.data.nsd_layout import ROI_ATLASES
from nrf.data.prepared import PreparedSubject, Split, write_prepared
from nrf.features.extractors import get_extractor
from nrf.models.nrf import NRF, NRFConfig
from nrf.training.encoders import save_checkpoint
from nrf.training.loop import predict
from nrf.volumes.cli import main
from nrf.volumes.grid import (
    MNI152_CORNER,
    MNI152_EXTENT,
    VolumeError,
    grid_points,
    mni_brain_mask,
    mni_grid,
    resample_mask,
)
from nrf.volumes.query import fill_volume, nrf_predictor, predict_points, query_volume

SIZE = 32  # the training stimuli's side


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small random NRF checkpoint in train_encoder's format, its prepared file
    (training voxels on a 2 mm lattice) and a features file naming the filter bank."""
    d = tmp_path_factory.mktemp("vol")
    fb = get_extractor("filterbank")
    config = NRFConfig(token_dim=fb.token_dim, n_tokens=fb.n_tokens, embedding_dim=fb.embedding_dim,
                       merger_token_dim=4, merger_dim=8, fourier_features=8, fourier_scale=4.0, depth=3, width=16)
    model = NRF(config, init_seed=0).eval()
    # training voxels: grid points of the 2 mm MNI grid in a small occipital block
    shape, affine = mni_grid(2.0)
    ijk = np.argwhere(np.ones((6, 5, 4), bool)) + np.array([40, 15, 30])
    coords = nib.affines.apply_affine(affine, ijk).astype(np.float32)
    n = len(coords)
    split = Split(responses=np.zeros((2, n), np.float32), image_ids=np.arange(2))
    prepared = d / "prepared.hdf5"
    write_prepared(prepared, PreparedSubject(
        coords=coords, voxel_ijk=ijk.astype(np.int32), rois={a: np.zeros(n, np.int16) for a in ROI_ATLASES},
        ncsnr=np.ones(n, np.float32), train=split, val=None, test=split,
        attrs=dict(subject="subj01", protocol="paper", grid_shape=(99, 117, 95), sessions=[1], val_is_test=True)))
    features = d / "features.hdf5"
    with h5py.File(features, "w") as f:
        f.attrs["extractor"] = "filterbank"
        f.attrs["layers"] = np.array([1, 2])
    ckpt = d / "nrf.pt"
    save_checkpoint({"kind": "nrf", "model_config": config.to_dict(), "state_dict": model.state_dict(),
                     "subject": "subj01", "prepared": str(prepared), "features": str(features), "n_voxels": n}, ckpt)
    images = d / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    return {"dir": d, "model": model, "ckpt": ckpt, "prepared": prepared, "images": images, "coords": coords,
            "ijk": ijk, "features_of": fb.extract}


@pytest.mark.parametrize("r", [1.0, 2.0])
def test_grid_is_nilearns_mni152_template_grid(r):
    from nilearn.datasets import load_mni152_template

    shape, affine = mni_grid(r)
    template = load_mni152_template(resolution=int(r))
    assert shape == template.shape
    np.testing.assert_allclose(affine, template.affine)


@pytest.mark.parametrize("r", [0.5, 1.8, 3.0])
def test_grid_at_any_resolution_covers_the_box_with_r_mm_voxels(r):
    shape, affine = mni_grid(r)
    np.testing.assert_allclose(nib.affines.voxel_sizes(affine), [r, r, r])
    np.testing.assert_allclose(affine[:3, 3], MNI152_CORNER)
    far = nib.affines.apply_affine(affine, np.array(shape) - 1)
    top = MNI152_CORNER + MNI152_EXTENT
    assert np.all(far <= top + 1e-6) and np.all(far > top - r)


def test_volume_affine_codes_and_training_voxels_equal_ordinary_prediction(setup, tmp_path):
    out = tmp_path / "vol.nii.gz"
    sidecar = query_volume(setup["ckpt"], setup["images"], out, resolution=2.0, stimulus_size=SIZE,
                             chunk_points=37)
    img = nib.load(out)
    shape, affine = mni_grid(2.0)
    assert img.shape == (*shape, 3) and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, affine)
    assert int(img.header["sform_code"]) == 4 and int(img.header["qform_code"]) == 4
    np.testing.assert_allclose(img.header.get_qform(), affine)
    # the volume at the training voxels (they lie on this grid) is the model's ordinary prediction
    data = np.asarray(img.dataobj)
    at_train = data[tuple(setup["ijk"].T)].T  # (n_img, n_vox)
    from PIL import Image

    pixels = np.stack([np.asarray(Image.open(setup["images"] / f"img{i}.png")) for i in range(3)])
    feats = setup["features_of"](pixels)
    expected = predict(setup["model"], feats, setup["coords"], device="cpu")
    np.testing.assert_allclose(at_train, expected, rtol=1e-5, atol=1e-6)
    # the mask: the training block dilated by one voxel (2 mm lattice: its 6-neighbours)
    mask = data[..., 0] != 0
    assert mask.sum() == sidecar["n_points"]
    assert mask.sum() == 6 * 5 * 4 + 2 * (6 * 5 + 5 * 4 + 6 * 4)
    side = json.loads((tmp_path / "vol.nii.gz.json").read_text())
    assert side["extractor"] == "filterbank" and side["mask"] == "training"
    assert [i["file"] for i in side["images"]] == ["img0.png", "img1.png", "img2.png"]
    assert len(side["images"][0]["sha256"]) == 64


def test_chunks_bound_the_work_per_step(setup):
    """Each step evaluates at most chunk_points coordinates, and the coordinate code
    is computed once per point (not once per image)."""
    model = setup["model"]
    calls = []
    original = model.coord_code

    def spy(coords):
        calls.append(len(coords))
        return original(coords)

    model.coord_code = spy
    try:
        feats = setup["features_of"](np.zeros((5, SIZE, SIZE, 3), np.uint8))
        pts = np.random.default_rng(0).uniform(-60, 60, (1000, 3))
        out = predict_points(nrf_predictor(model, feats), pts, chunk_points=128)
    finally:
        del model.coord_code
    assert out.shape == (5, 1000)
    assert max(calls) == 128 and sum(calls) == 1000  # once per point, 5 images share it
    np.testing.assert_allclose(out, predict(model, feats, pts.astype(np.float32), device="cpu"),
                               rtol=1e-5, atol=1e-6)


def test_peak_memory_is_bounded_by_chunk_size(tmp_path):
    """At 1 mm over a whole brain (~1.9 M points) the traced numpy peak stays near one
    chunk's worth, far below the points' own size (the NRF's share per chunk is
    bounded by the chunk, test_chunks_bound_the_work_per_step)."""
    import tracemalloc

    shape, affine = mni_grid(1.0)
    centre, radii = np.array([0.0, -18.0, 18.0]), np.array([70.0, 95.0, 70.0])
    ijk = np.ogrid[: shape[0], : shape[1], : shape[2]]
    mask = sum(((affine[a, a] * ijk[a] + affine[a, 3] - centre[a]) / radii[a]) ** 2 for a in range(3)) < 1.0
    n_points = int(mask.sum())
    sizes = []

    def predict(points):  # two "images": x and y of each point
        sizes.append(len(points))
        return points[:, :2].T

    tracemalloc.start()
    tracemalloc.reset_peak()
    vol = fill_volume(predict, mask, affine, 2, tmp_path, chunk_points=16384)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n_points > 1_500_000 and sum(sizes) == n_points and max(sizes) <= 16384
    some = np.argwhere(mask)[:: 100_003]
    np.testing.assert_allclose(np.asarray(vol)[tuple(some.T)][:, 0], grid_points(shape, affine, mask)[:: 100_003, 0])
    assert peak < 3_000_000, peak  # the points' coordinates alone would be 45 MB, the volume 15 MB


def test_mni_brain_mask_is_nilearns(setup):
    from nilearn.datasets import load_mni152_brain_mask

    shape, affine = mni_grid(2.0)
    ours = mni_brain_mask(shape, affine)
    theirs = np.asarray(load_mni152_brain_mask(resolution=2).dataobj) > 0
    assert (ours == theirs).mean() > 0.995


def test_rotated_mask_is_resampled_nearest():
    """A mask on a rotated grid (the slice-by-slice path) agrees with scipy's order-0 resampling."""
    from scipy import ndimage

    shape, affine = mni_grid(3.0)
    rot = np.eye(4)
    c, s = np.cos(0.2), np.sin(0.2)
    rot[:2, :2] = [[c, -s], [s, c]]
    src_affine = rot @ np.diag([4.0, 4.0, 4.0, 1.0])
    src_affine[:3, 3] = [-40.0, -100.0, -40.0]
    data = np.zeros((20, 20, 20), np.uint8)
    data[5:15, 3:17, 4:12] = 1
    ours = resample_mask(nib.Nifti1Image(data, src_affine), shape, affine)
    to_src = np.linalg.inv(src_affine) @ affine
    ref = ndimage.affine_transform(data, to_src[:3, :3], offset=to_src[:3, 3], output_shape=shape, order=0) > 0
    assert ours.sum() > 1000 and (ours != ref).sum() <= 0.01 * ref.sum()


def test_help_works(capsys):
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["nrf-volume"] == "nrf.volumes.cli:main"
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nrf-volume") and "--resolution" in out and "mni-brain" in out


def _no_nifti(folder):
    return not [p for p in folder.rglob("*") if ".nii" in p.name]


def test_bad_input_is_named_and_leaves_nothing(setup, tmp_path):
    ckpt, images = setup["ckpt"], setup["images"]
    out = tmp_path / "out" / "vol.nii.gz"
    kw = dict(stimulus_size=SIZE)
    # an unreadable image, named
    bad_images = tmp_path / "bad_images"
    bad_images.mkdir()
    for p in images.iterdir():
        (bad_images / p.name).write_bytes(p.read_bytes())
    (bad_images / "broken.png").write_bytes(b"not a png")
    with pytest.raises(VolumeError, match="broken.png"):
        query_volume(ckpt, bad_images, out, resolution=2.0, **kw)
    # resolution <= 0
    for r in (0, -1.0):
        with pytest.raises(VolumeError, match="resolution"):
            query_volume(ckpt, images, out, resolution=r, **kw)
    # a checkpoint that is not an NRF
    linear = tmp_path / "linear.pt"
    save_checkpoint({"kind": "linear", "model_config": {"embedding_dim": 3, "n_voxels": 2}, "state_dict": {}}, linear)
    with pytest.raises(VolumeError, match="linear.pt.*not an NRF"):
        query_volume(linear, images, out, resolution=2.0, **kw)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(VolumeError, match="junk.pt"):
        query_volume(junk, images, out, resolution=2.0, **kw)
    # features whose size does not match the checkpoint
    with pytest.raises(VolumeError, match="nrf.pt.*tokens_shallow"):
        query_volume(ckpt, images, out, resolution=2.0, extractor="filterbank",
                       extractor_options={"grid": 2}, **kw)
    # a mask outside the MNI box
    far = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]) + np.c_[
        np.zeros((4, 3)), [500.0, 500.0, 500.0, 0.0]])
    nib.save(far, tmp_path / "far_mask.nii.gz")
    with pytest.raises(VolumeError, match="far_mask.nii.gz.*outside the MNI152 box"):
        query_volume(ckpt, images, out, resolution=2.0, mask=str(tmp_path / "far_mask.nii.gz"), **kw)
    assert _no_nifti(tmp_path / "out") if (tmp_path / "out").exists() else True


def test_command_line_reports_bad_input_without_traceback(setup, tmp_path):
    result = subprocess.run([sys.executable, "-m", "nrf.volumes", str(setup["ckpt"]), str(setup["images"]),
                             str(tmp_path / "v.nii.gz"), "--resolution", "-2"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "resolution" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v.nii.gz").exists()


def test_command_line_writes_a_volume(setup, tmp_path):
    out = tmp_path / "v.nii"
    result = subprocess.run([sys.executable, "-m", "nrf.volumes", str(setup["ckpt"]), str(setup["images"]),
                             str(out), "--resolution", "3", "--stimulus-size", str(SIZE)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    img = nib.load(out)
    assert img.shape[3] == 3 and np.allclose(nib.affines.voxel_sizes(img.affine), 3.0)
