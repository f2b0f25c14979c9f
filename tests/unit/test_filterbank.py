"""The weight-free filter bank: the image-block interface, determinism, selectivity."""

from __future__ import annotations

import numpy as np
import pytest

from nrf.features import check_features
from nrf.features.extractors import get_extractor
from nrf.features.filterbank import FilterBankExtractor


def _grating(size, theta, wavelength=8.0, contrast=0.4):
    v, u = np.mgrid[0:size, 0:size].astype(float)
    lum = 0.5 + contrast * np.sin(2 * np.pi * (u * np.cos(theta) + v * np.sin(theta)) / wavelength)
    return np.clip(np.rint(np.repeat(lum[..., None], 3, -1) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, size=(9, 64, 64, 3), dtype=np.uint8)
    imgs[0] = 0  # black
    imgs[1] = 255  # white
    imgs[2] = _grating(64, 0.0)
    imgs[3] = _grating(64, np.pi / 2)
    return imgs


def test_interface_shapes_and_dtypes(images):
    ext = FilterBankExtractor()
    out = ext.extract(images)
    check_features(out, len(images))
    assert out["tokens_shallow"].shape == (9, ext.n_tokens, ext.token_dim) == (9, 16, 20)
    assert out["tokens_deep"].shape == out["tokens_shallow"].shape
    assert out["embedding"].shape == (9, ext.embedding_dim) == (9, 200)
    for v in out.values():
        assert v.dtype == np.float32
        assert np.isfinite(v).all()
    assert ext.name == "filterbank" and len(ext.layers) == 2


def test_layer_maps_for_fwrf_fine_to_coarse(images):
    ext = FilterBankExtractor()
    out = ext.extract(images)
    check_features(out, len(images))
    assert ext.map_layers == ("s1_16", "s1_8", "s1_4", "s2_8", "s2_4")
    sides = {layer: round(out[f"maps/{layer}"].shape[1] ** 0.5) for layer in ext.map_layers}
    assert sides == {"s1_16": 16, "s1_8": 8, "s1_4": 4, "s2_8": 8, "s2_4": 4}
    for layer in ext.map_layers:
        assert out[f"maps/{layer}"].shape == (9, sides[layer] ** 2, ext.token_dim)
        assert out[f"maps/{layer}"].dtype == np.float32
    # the grids at the token grid's size are the token grids; NRF's inputs are unchanged
    np.testing.assert_array_equal(out["maps/s1_4"], out["tokens_shallow"])
    np.testing.assert_array_equal(out["maps/s2_4"], out["tokens_deep"])
    # a finer stage-1 grid averages back to the coarser one's colour channels (linear before the log)
    fine = out["maps/s1_16"].reshape(9, 4, 4, 4, 4, -1)[..., ext.n_filters:ext.n_filters + 3]
    np.testing.assert_allclose(fine.mean(axis=(2, 4)).reshape(9, 16, 3),
                               out["tokens_shallow"][..., ext.n_filters:ext.n_filters + 3], atol=1e-5)


def test_options_change_shapes(images):
    ext = FilterBankExtractor(grid=2, n_orientations=6, wavelengths=(4.0, 8.0))
    out = ext.extract(images[:3])
    assert out["tokens_shallow"].shape == (3, 4, 6 * 2 + 4)
    assert out["embedding"].shape == (3, 10 * (6 * 2 + 4))
    with pytest.raises(ValueError, match="divisible"):
        FilterBankExtractor(grid=5)


def test_registered_in_get_extractor():
    assert isinstance(get_extractor("filterbank", grid=4), FilterBankExtractor)


def test_deterministic_and_batch_independent(images):
    a = FilterBankExtractor().extract(images)
    b = FilterBankExtractor(batch_size=2).extract(images)
    single = FilterBankExtractor().extract(images[4:5])
    for k in a:
        np.testing.assert_array_equal(a[k], FilterBankExtractor().extract(images)[k])
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
        np.testing.assert_allclose(a[k][4:5], single[k], atol=1e-5)
    other_seed = FilterBankExtractor(seed=1).extract(images)
    np.testing.assert_array_equal(a["tokens_shallow"], other_seed["tokens_shallow"])
    assert not np.allclose(a["tokens_deep"], other_seed["tokens_deep"])


def test_different_images_give_different_features(images):
    out = FilterBankExtractor().extract(images)
    for k, v in out.items():
        flat = v.reshape(len(v), -1)
        d = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
        assert (d[~np.eye(len(v), dtype=bool)] > 1e-3).all(), k


def test_orientation_selectivity():
    ext = FilterBankExtractor()
    out = ext.extract(np.stack([_grating(64, 0.0), _grating(64, np.pi / 2)]))
    # shallow channels: wavelength-major, orientation-minor; the 8 px scale is the second
    e = out["tokens_shallow"].mean(1)[:, ext.n_orientations: 2 * ext.n_orientations]
    # a grating varying along x (theta = 0) drives orientation 0; along y drives orientation 2
    assert e[0].argmax() == 0 and e[1].argmax() == 2
    # the fine scale responds less than the matched one
    fine = out["tokens_shallow"].mean(1)[:, :ext.n_orientations]
    assert fine[0].max() < e[0].max()


def test_resizes_other_image_sizes(images):
    ext = FilterBankExtractor()
    small = images[:, ::2, ::2]
    out = ext.extract(small)
    check_features(out, len(images))
    assert out["tokens_deep"].shape == (9, 16, 20)
    big = np.repeat(np.repeat(images[:2], 3, axis=1), 3, axis=2)
    assert np.isfinite(ext.extract(big)["embedding"]).all()
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        ext.extract(images[..., 0])


def test_empty_batch():
    out = FilterBankExtractor().extract(np.zeros((0, 64, 64, 3), np.uint8))
    assert out["tokens_shallow"].shape == (0, 16, 20) and out["embedding"].shape == (0, 200)
    assert out["maps/s1_16"].shape == (0, 256, 20)
