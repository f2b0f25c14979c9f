"""The NRF model: split first layer vs concatenation, Fourier features, mergers, size."""

import numpy as np
import pytest
import torch

from nrf.models.nrf import (
    MNI_BOX,
    NRF,
    FourierFeatures,
    NRFConfig,
    TokenMerger,
    count_parameters,
    normalise_coords,
    set_trainable,
)

SMALL = dict(token_dim=6, n_tokens=5, embedding_dim=7, merger_token_dim=3, merger_dim=4,
             fourier_features=8, fourier_scale=4.0, depth=4, width=16)


def _features(rng, n_img, cfg):
    return {
        "tokens_shallow": torch.as_tensor(rng.normal(size=(n_img, cfg.n_tokens, cfg.token_dim)), dtype=torch.float16),
        "tokens_deep": torch.as_tensor(rng.normal(size=(n_img, cfg.n_tokens, cfg.token_dim)), dtype=torch.float32),
        "embedding": torch.as_tensor(rng.normal(size=(n_img, cfg.embedding_dim)), dtype=torch.float32),
    }


def test_split_first_layer_equals_concat(rng):
    cfg = NRFConfig(**SMALL)
    model = NRF(cfg, init_seed=0)
    feats = _features(rng, 5, cfg)
    coords = torch.as_tensor(rng.uniform(-60, 60, size=(11, 3)), dtype=torch.float32)
    split = model(feats, coords)
    concat = model.forward_concat(feats, coords)
    assert split.shape == (5, 11)
    torch.testing.assert_close(split, concat, atol=1e-5, rtol=0)
    # the codes have the documented shapes
    assert model.image_code(feats).shape == (5, cfg.width)
    assert model.coord_code(coords).shape == (11, cfg.width)
    # and gradients agree as well
    g1 = torch.autograd.grad(split.square().sum(), model.predictor[0].weight)[0]
    g2 = torch.autograd.grad(model.forward_concat(feats, coords).square().sum(), model.predictor[0].weight)[0]
    torch.testing.assert_close(g1, g2, atol=1e-5, rtol=1e-4)


def test_fourier_features_formula(rng):
    ff = FourierFeatures(n_features=6, scale=32.0, seed=3)
    b = np.random.default_rng(3).normal(0.0, 32.0, size=(3, 6))
    np.testing.assert_allclose(ff.B.numpy(), b, rtol=1e-6)
    assert "B" in dict(ff.named_buffers()) and not list(ff.parameters())
    x = rng.uniform(0, 1, size=(10, 3))
    out = ff(torch.as_tensor(x, dtype=torch.float32)).numpy()
    xb = x @ ff.B.numpy().astype(np.float64)
    assert out.shape == (10, 12)
    np.testing.assert_allclose(out, np.concatenate([np.sin(xb), np.cos(xb)], axis=1), atol=1e-5)
    # same seed, same B; another seed, another B
    assert torch.equal(FourierFeatures(6, 32.0, 3).B, ff.B)
    assert not torch.equal(FourierFeatures(6, 32.0, 4).B, ff.B)


def test_mni_box_normalisation():
    corners = torch.tensor([[-92.0, -126.0, -72.0], [90.0, 92.0, 110.0]])
    np.testing.assert_allclose(normalise_coords(corners, MNI_BOX).numpy(), [[0, 0, 0], [1, 1, 1]], atol=1e-6)


def test_merger_shapes_and_image_embedding(rng):
    merger = TokenMerger(token_dim=6, n_tokens=5, merger_token_dim=3, merger_dim=4)
    assert merger(torch.randn(2, 5, 6)).shape == (2, 4)
    with pytest.raises(ValueError, match="expected tokens"):
        merger(torch.randn(2, 4, 6))
    cfg = NRFConfig(**SMALL)
    model = NRF(cfg, init_seed=0)
    g = model.image_embedding(_features(rng, 3, cfg))
    assert g.shape == (3, cfg.image_dim) and cfg.image_dim == 2 * 4 + 7
    # the two merged grids are L2-normalised together; the embedding is appended as is
    torch.testing.assert_close(g[:, :8].norm(dim=1), torch.ones(3))


def test_paper_size_parameter_count():
    counts = count_parameters(NRFConfig(token_dim=768, n_tokens=196, embedding_dim=512))
    # DESIGN.md §1: the predictor MLP is ~107 M parameters
    assert 106e6 <= counts["predictor"] <= 109e6
    # two mergers of 768*128+128 + 196*128*512+512 each
    assert counts["image_block"] == 2 * (768 * 128 + 128 + 196 * 128 * 512 + 512)


def test_init_seed_and_trainable():
    cfg = NRFConfig(**SMALL)
    a, b = NRF(cfg, init_seed=1), NRF(cfg, init_seed=1)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    kept = set_trainable(a, "predictor")
    assert {id(p) for p in kept} == {id(p) for p in a.predictor.parameters()}
    assert not any(p.requires_grad for p in a.merger_deep.parameters())
    with pytest.raises(ValueError, match="trainable"):
        set_trainable(a, "merger")


def test_per_image_coordinates_equal_concat(rng):
    # a voxel set per image (the authors' sampling): still exactly the concatenation
    cfg = NRFConfig(**SMALL)
    model = NRF(cfg, init_seed=0)
    feats = _features(rng, 4, cfg)
    coords = torch.as_tensor(rng.uniform(-60, 60, size=(4, 9, 3)), dtype=torch.float32)
    split = model(feats, coords)
    assert split.shape == (4, 9)
    torch.testing.assert_close(split, model.forward_concat(feats, coords), atol=1e-5, rtol=0)
    # image i at its own voxels equals the shared-voxel forward of that image
    alone = model({k: v[2:3] for k, v in feats.items()}, coords[2])
    torch.testing.assert_close(split[2:3], alone, atol=1e-6, rtol=0)


def test_coordinate_half_stays_float32_under_bf16_autocast(rng):
    # sigma = 32 gives phases of hundreds of radians: bf16 would move them by ~0.3 rad
    cfg = NRFConfig(**{**SMALL, "fourier_features": 32, "fourier_scale": 32.0, "fourier_seed": 42})
    model = NRF(cfg, init_seed=0)
    coords = torch.as_tensor(rng.uniform(-70, 70, size=(500, 3)), dtype=torch.float32)
    gamma32, code32 = model.coord_features(coords), model.coord_code(coords)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gamma16, code16 = model.coord_features(coords), model.coord_code(coords)
        # what the phases would be if autocast reached them
        phases_bf16 = normalise_coords(coords, cfg.coord_box) @ model.fourier.B.to(torch.bfloat16)
    assert gamma16.dtype == code16.dtype == torch.float32
    assert torch.equal(gamma16, gamma32) and torch.equal(code16, code32)
    phases32 = normalise_coords(coords, cfg.coord_box) @ model.fourier.B
    assert (phases_bf16.float() - phases32).abs().max() > 0.1  # the error the guard removes


def test_fourier_seed_42_gives_the_authors_B():
    # their B: numpy default_rng(seed=42).normal(scale=std, size=(3, num_features)) as float32
    expected = np.random.default_rng(seed=42).normal(scale=32.0, size=(3, 32)).astype(np.float32)
    model = NRF(NRFConfig(**{**SMALL, "fourier_features": 32, "fourier_scale": 32.0, "fourier_seed": 42}))
    np.testing.assert_array_equal(model.fourier.B.numpy(), expected)


@torch.no_grad()
def test_bf16_autocast_adds_the_codes_and_applies_the_first_relu_in_bf16(rng):
    # issue 22: under bf16 autocast the (n_img, n_vox, width) sum of the image and coordinate codes
    # and the first ReLU stay in bf16 (they were promoted to float32); γ(x) and W_c γ(x) stay float32.
    # Tolerance against the float32 add, recorded: 2 % of the largest output (measured at most 0.8 %
    # over 20 seeds; 1.2 % against no autocast at all);
    # without autocast the result is bitwise today's.
    cfg = NRFConfig(**{**SMALL, "fourier_features": 32, "fourier_scale": 32.0, "fourier_seed": 42})
    model = NRF(cfg, init_seed=0)
    feats = _features(rng, 4, cfg)
    coords = torch.as_tensor(rng.uniform(-70, 70, size=(4, 9, 3)), dtype=torch.float32)
    relu_out = []
    model.predictor[1].register_forward_pre_hook(lambda module, args: relu_out.append(args[0].dtype))
    fp32 = model(feats, coords)
    assert torch.equal(fp32, model.head(model.image_code(feats)[:, None, :] + model.coord_code(coords)))
    assert relu_out == [torch.float32, torch.float32]
    relu_out.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img, crd = model.image_code(feats), model.coord_code(coords)
        new = model.forward_codes(img, crd)
        old = model.head(img[:, None, :] + crd)  # the promotion to float32 before issue 22
        gamma = model.coord_features(coords)
    assert gamma.dtype == crd.dtype == torch.float32 and img.dtype == torch.bfloat16
    assert relu_out == [torch.bfloat16, torch.float32]
    scale = float(old.float().abs().max())
    torch.testing.assert_close(new.float(), old.float(), atol=0.02 * scale, rtol=0)
    torch.testing.assert_close(new.float(), fp32, atol=0.03 * scale, rtol=0)
    # shared voxels: the same
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shared = model(feats, coords[0])
    torch.testing.assert_close(shared.float(), model(feats, coords[0]), atol=0.03 * scale, rtol=0)


def test_box_normalisation_is_a_device_buffer_not_in_the_checkpoint(rng):
    cfg = NRFConfig(**SMALL)
    model = NRF(cfg, init_seed=0)
    assert "box_lower" not in model.state_dict() and "box_extent" not in model.state_dict()
    assert set(dict(model.named_buffers())) >= {"box_lower", "box_extent"}
    coords = torch.as_tensor(rng.uniform(-90, 90, size=(20, 3)), dtype=torch.float32)
    assert torch.equal(model.coord_features(coords), model.fourier(normalise_coords(coords, cfg.coord_box)))
    NRF(cfg).load_state_dict(model.state_dict())  # strict: old and new checkpoints load alike
