"""ClipViTB16 on a randomly initialised ViT-B/16: shapes, taps, weights errors.

References are computed independently of the extractor's hooks: a manual
pass through open_clip's vision tower (embeddings, blocks, ln_post, proj),
open_clip's own ``forward_intermediates`` where it exists, and
``model.encode_image``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from nrf.features.extractors import get_extractor  # noqa: E402
from nrf.features.base import check_features  # noqa: E402
from nrf.features.clip import ClipViTB16, _is_torchscript_archive  # noqa: E402


@pytest.fixture(scope="module")
def extractor():
    return ClipViTB16(None, allow_random=True, seed=0)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(20251123)
    return rng.integers(0, 256, size=(2, 425, 425, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def features(extractor, images):
    return extractor.extract(images)


def block_outputs(model, pixels):
    """Every block's output (n, 197, 768) and the embedding, by a manual pass."""
    visual = model.visual
    with torch.no_grad():
        x = visual.conv1(pixels)  # (n, 768, 14, 14)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding
        x = visual.ln_pre(x)
        batch_first = getattr(visual.transformer, "batch_first", False)
        if not batch_first:
            x = x.transpose(0, 1)
        outputs = []
        for block in visual.transformer.resblocks:
            x = block(x)
            outputs.append(x if batch_first else x.transpose(0, 1))
        embedding = visual.ln_post(outputs[-1][:, 0]) @ visual.proj
    return outputs, embedding


def test_shapes_and_dtypes(features):
    check_features(features, 2)
    assert features["tokens_shallow"].shape == (2, 196, 768)
    assert features["tokens_deep"].shape == (2, 196, 768)
    assert features["embedding"].shape == (2, 512)
    assert all(v.dtype == np.float32 for v in features.values())


def test_taps_match_independent_references(extractor, images, features):
    pixels = extractor.preprocess(images)
    outputs, embedding = block_outputs(extractor.model, pixels)
    np.testing.assert_allclose(features["tokens_shallow"], outputs[2][:, 1:].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(features["tokens_deep"], outputs[5][:, 1:].numpy(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        encoded = extractor.model.encode_image(pixels).numpy()
    np.testing.assert_allclose(features["embedding"], encoded, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(features["embedding"], embedding.numpy(), rtol=1e-4, atol=1e-4)
    # not normalised: the raw projected embedding
    assert not np.allclose(np.linalg.norm(features["embedding"], axis=1), 1.0)

    visual = extractor.model.visual
    if hasattr(visual, "forward_intermediates"):
        with torch.no_grad():
            ref = visual.forward_intermediates(pixels, indices=[2, 5], output_fmt="NLC")
        shallow, deep = (t.numpy() for t in ref["image_intermediates"])
        np.testing.assert_allclose(features["tokens_shallow"], shallow, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(features["tokens_deep"], deep, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(features["embedding"], ref["image_features"].numpy(), rtol=1e-5, atol=1e-5)


def test_one_pass_over_the_blocks(extractor, images):
    calls = []
    handles = [
        block.register_forward_hook(lambda *args, i=i: calls.append(i))
        for i, block in enumerate(extractor.model.visual.transformer.resblocks)
    ]
    try:
        extractor.extract(images)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == list(range(12))


def test_batches_and_layer_choice(extractor, images, features):
    other = get_extractor("clip_vitb16", weights=None, allow_random=True, seed=0, layers=(4, 7), batch_size=1)
    assert other.layers == (4, 7)
    got = other.extract(images)  # two batches of one image
    # same seed, same weights: the embedding agrees, the taps move with the layers
    np.testing.assert_allclose(got["embedding"], features["embedding"], rtol=1e-5, atol=1e-5)
    assert not np.allclose(got["tokens_shallow"], features["tokens_shallow"], atol=1e-3)
    assert not np.allclose(got["tokens_deep"], features["tokens_deep"], atol=1e-3)
    outputs, _ = block_outputs(extractor.model, extractor.preprocess(images))
    np.testing.assert_allclose(got["tokens_shallow"], outputs[3][:, 1:].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["tokens_deep"], outputs[6][:, 1:].numpy(), rtol=1e-5, atol=1e-5)


def test_preprocess_matches_pil_bicubic(extractor):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, size=(2, 24, 24, 3), dtype=np.uint8)
    images = np.stack([np.asarray(Image.fromarray(im).resize((425, 425), Image.BICUBIC)) for im in small])
    pil = np.stack([np.asarray(Image.fromarray(im).resize((224, 224), Image.BICUBIC)) for im in images])
    x = extractor.preprocess(images)
    assert tuple(x.shape) == (2, 3, 224, 224)
    unnormalised = (x * extractor._std + extractor._mean).permute(0, 2, 3, 1).numpy()
    # PIL rounds to uint8; otherwise the same antialiased bicubic kernel
    assert np.abs(unnormalised - pil / 255.0).max() < 1.5 / 255
    # a 224 x 224 image is only normalised
    exact = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    x = extractor.preprocess(exact).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(x, (exact / 255.0 - mean) / std, atol=1e-5)


def test_random_weights_need_explicit_permission():
    with pytest.raises(ValueError, match="allow_random=True"):
        ClipViTB16(None)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "ViT-B-16.pt"
    with pytest.raises(RuntimeError) as err:
        ClipViTB16(missing)
    message = str(err.value)
    assert str(missing) in message and "does not exist" in message
    assert "features.clip_weights" in message and "openai" in message


def test_unreadable_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "weights.bin"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(RuntimeError, match="could not load the weights in") as err:
        ClipViTB16(bad)
    assert "features.clip_weights" in str(err.value)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_archives_are_told_apart(tmp_path):
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    plain = tmp_path / "plain.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    assert _is_torchscript_archive(scripted)
    assert not _is_torchscript_archive(plain)


def test_bad_layers_rejected():
    with pytest.raises(ValueError, match="1..12"):
        ClipViTB16(None, allow_random=True, layers=(0, 6))
    with pytest.raises(ValueError, match="1..12"):
        ClipViTB16(None, allow_random=True, layers=(3, 6, 9))


def test_unknown_extractor_names_the_choices():
    with pytest.raises(ValueError, match="clip_vitb16.*filterbank.*alexnet"):
        get_extractor("vgg16")


def test_precision_is_fp32_by_default_and_checked():
    """The authors run CLIP in fp32; bf16 is opt-in (features.clip_precision)."""
    from nrf.features.pipeline import extractor_options

    options = extractor_options("clip_vitb16", {"clip_weights": "openai", "clip_layers": [4, 7], "batch_size": 8,
                                                "clip_precision": "fp32"}, "cpu")
    assert options["precision"] == "fp32"
    assert ClipViTB16(None, allow_random=True).precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        ClipViTB16(None, allow_random=True, precision="fp16")
