"""nrf.decoding.image_metrics against direct NumPy / SciPy / scikit-image computations."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import correlation
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision import transforms

from nrf.decoding import image_metrics as im


@pytest.fixture
def pair():
    """Seen images and noisy reconstructions of them, (6, 3, 64, 64) in [0, 1]."""
    rng = np.random.default_rng(0)
    seen = rng.random((6, 3, 64, 64), dtype=np.float32)
    recon = np.clip(seen + 0.3 * rng.standard_normal(seen.shape), 0, 1).astype(np.float32)
    return seen, recon


def torchvision_resize(images, size):
    """MindEye2's resize: torchvision Resize, bilinear, without antialiasing."""
    resize = transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR, antialias=False)
    return resize(torch.from_numpy(images)).numpy()


def test_resize_is_torchvision_bilinear_without_antialias(pair):
    seen, _ = pair
    np.testing.assert_allclose(im.resize(seen, 256), torchvision_resize(seen, 256), atol=1e-6)
    big = torchvision_resize(seen, 425)
    np.testing.assert_allclose(im.resize(big, 256), torchvision_resize(big, 256), atol=1e-6)
    # the channels-last route changes no bit, up or down, and hands back C order
    for images, size in ((seen, 425), (big, 256)):
        got = im.resize(images, size)
        assert got.flags["C_CONTIGUOUS"] and np.array_equal(got, torchvision_resize(images, size))


def test_pixcorr_is_the_mean_per_image_pearson_at_425(pair):
    seen, recon = pair
    a = torchvision_resize(torchvision_resize(seen, 256), 425).reshape(len(seen), -1)
    b = torchvision_resize(torchvision_resize(recon, 256), 425).reshape(len(seen), -1)
    expected = np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])
    assert im.pixcorr(seen, recon) == pytest.approx(expected, abs=1e-6)
    assert im.pixcorr(seen, seen) == pytest.approx(1.0, abs=1e-6)


def test_ssim_is_scikit_image_on_grayscale_425(pair):
    seen, recon = pair
    a = rgb2gray(torchvision_resize(torchvision_resize(seen, 256), 425).transpose(0, 2, 3, 1))
    b = rgb2gray(torchvision_resize(torchvision_resize(recon, 256), 425).transpose(0, 2, 3, 1))
    expected = np.mean([
        structural_similarity(y, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        for x, y in zip(a, b)
    ])
    assert im.ssim(seen, recon) == pytest.approx(expected, abs=1e-6)
    assert im.ssim(seen, seen) == pytest.approx(1.0, abs=1e-6)
    assert im.ssim(seen, recon) < 0.9
    # the seen image's filtered maps are computed once for all sets: each pair's
    # SSIM is still scikit-image's, bit for bit, in float32 and float64
    for x, y in zip(a, b):
        for dtype in (np.float32, np.float64):
            x_, y_ = x.astype(dtype), y.astype(dtype)
            reference = structural_similarity(y_, x_, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                              data_range=1.0)
            assert im._ssim_with_seen(y_, im._ssim_seen_terms(x_)) == reference


def two_way_loop(seen, recon):
    """The definition, one comparison at a time."""
    n = len(seen)
    r = np.corrcoef(seen, recon)[:n, n:]
    total = 0.0
    for j in range(n):
        total += sum(r[i, j] < r[j, j] for i in range(n) if i != j) / (n - 1)
    return total / n


def test_two_way_identification_matches_the_loop():
    rng = np.random.default_rng(1)
    seen = rng.standard_normal((30, 50))
    recon = seen + 2.0 * rng.standard_normal(seen.shape)
    value = im.two_way_identification(seen, recon)
    assert value == pytest.approx(two_way_loop(seen, recon), abs=1e-12)
    assert 0.5 < value < 1.0
    assert im.two_way_identification(seen, seen) == 1.0
    # unrelated features sit at chance (the mean of 1000 uniform ranks: sd 0.009)
    chance = im.two_way_identification(rng.standard_normal((1000, 20)), rng.standard_normal((1000, 20)))
    assert chance == pytest.approx(0.5, abs=0.05)


def test_two_way_identification_ties_lose_and_order_matters():
    # every seen image identical: each reconstruction ties with all, and a tie is not a win
    seen = np.tile(np.arange(8.0), (5, 1))
    recon = np.random.default_rng(2).standard_normal((5, 8))
    assert im.two_way_identification(seen, recon) == 0.0
    # seen features first: swapping the arguments changes the score
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    assert im.two_way_identification(a, b) != im.two_way_identification(b, a)


def test_correlation_distance_is_scipys():
    rng = np.random.default_rng(4)
    seen, recon = rng.standard_normal((10, 40)), rng.standard_normal((10, 40))
    expected = np.mean([correlation(s, r) for s, r in zip(seen, recon)])
    assert im.correlation_distance(seen, recon) == pytest.approx(expected, abs=1e-12)
    assert im.correlation_distance(seen, seen) == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs_are_named(pair):
    seen, recon = pair
    with pytest.raises(ValueError, match="recon"):
        im.pixcorr(seen, recon * 3)
    with pytest.raises(ValueError, match="5 reconstructions"):
        im.ssim(seen, recon[:5])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        im.pixcorr(seen[:, 0], recon[:, 0])


class MeanColour(torch.nn.Module):
    """A stand-in network: the per-channel means of its (normalised) input."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_evaluate_scores_available_networks_and_marks_the_rest_na(pair, caplog):
    seen, recon = pair

    def loader(network, allow_download):
        if network == "clip_vitl14":
            return MeanColour()
        raise im.NetworkUnavailable(f"{network} weights unavailable (test)")

    with caplog.at_level("WARNING"):
        results = im.evaluate(seen, recon, loader=loader)
    assert list(results) == list(im.METRICS)
    assert results["pixcorr"]["value"] == pytest.approx(im.pixcorr(seen, recon))
    for metric in ("alex2", "alex5", "inception", "effnet", "swav"):
        assert np.isnan(results[metric]["value"])
        assert results[metric]["note"].startswith("n/a")
    assert "alexnet weights unavailable" in caplog.text
    # CLIP: features at 224 with CLIP's normalisation, seen first
    mean = np.array(im.CLIP_MEAN).reshape(1, 3, 1, 1)
    std = np.array(im.CLIP_STD).reshape(1, 3, 1, 1)

    def feats(x):
        return ((torchvision_resize(torchvision_resize(x, 256), 224) - mean) / std).mean(axis=(2, 3))

    expected = im.two_way_identification(feats(seen), feats(recon))
    assert results["clip"]["value"] == pytest.approx(expected, abs=1e-6)


def test_missing_weights_are_unavailable_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for network in ("alexnet", "inception_v3", "efficientnet_b1", "swav_resnet50"):
        with pytest.raises(im.NetworkUnavailable, match="downloads are off"):
            im.load_network(network, allow_download=False)


def test_offline_cache_names_are_the_libraries_own():
    """The cached file and repository names checked before importing torchvision or open_clip."""
    import open_clip
    from pathlib import Path

    for network, (name, checkpoint) in im.TORCHVISION_WEIGHTS.items():
        _, weights = im._torchvision_weights(network)
        assert (str(weights), Path(weights.url).name) == (name, checkpoint)
    assert open_clip.get_pretrained_cfg("ViT-L-14", "openai")["hf_hub"].strip("/") == im.CLIP_HF_REPO


def test_no_cached_weights_means_no_heavy_import(tmp_path):
    """An offline job with nothing cached marks the networks n/a without importing
    torchvision or open_clip (about 3 CPU-seconds in every decoding job)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; torch.hub.set_dir(sys.argv[1]); import os; os.environ['HF_HUB_CACHE'] = sys.argv[1]\n"
        "from nrf.decoding import image_metrics as im\n"
        "for n in ('alexnet', 'inception_v3', 'efficientnet_b1', 'clip_vitl14', 'swav_resnet50'):\n"
        "    try: im.load_network(n, allow_download=False)\n"
        "    except im.NetworkUnavailable: pass\n"
        "    else: raise SystemExit(n + ' loaded')\n"
        "print(sorted(m for m in ('torchvision', 'open_clip') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_network_is_loaded_once_per_process(pair, tmp_path, monkeypatch):
    """Scoring many reconstruction sets (every adaptation cell) loads each network once,
    an unavailable one included, with every set's column n/a."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    calls = []
    real = im.load_network
    monkeypatch.setattr(im, "load_network", lambda network, **kw: calls.append(network) or real(network, **kw))
    im._load_once.cache_clear()
    try:
        seen, recon = pair
        for _ in range(3):
            results = im.evaluate(seen, recon, metrics=("alex2", "alex5"), allow_download=False)
            assert np.isnan(results["alex2"]["value"]) and results["alex5"]["note"].startswith("n/a")
    finally:
        im._load_once.cache_clear()
    assert calls == ["alexnet"]


def test_scoring_with_an_unavailable_network_keeps_no_images_alive(tmp_path, monkeypatch):
    """A job scores dozens of reconstruction sets in one process, so nothing of a
    scored set may outlive its call. The cached n/a reason, re-raised, once
    gathered every call's frame, with its resized images, into its traceback
    (+150 MB a set of 100 images in score_adaptation_decoding)."""
    import gc
    import types

    def live_evaluate_frames():
        gc.collect()
        return [o for o in gc.get_objects() if isinstance(o, types.FrameType) and o.f_code is im.evaluate.__code__]

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    rng = np.random.default_rng(0)
    im._load_once.cache_clear()
    try:
        for _ in range(3):
            seen, recon = rng.random((2, 2, 3, 32, 32), dtype=np.float32)
            results = im.evaluate(seen, recon, metrics=("alex2", "inception"), allow_download=False)
            assert np.isnan(results["alex2"]["value"])
        assert live_evaluate_frames() == []
    finally:
        im._load_once.cache_clear()


def test_layer_names_exist_in_the_real_architectures(pair):
    """Plumbing only: torchvision's architectures, untrained, expose the layers the metrics tap.

    (Untrained networks never produce reported numbers; load_network refuses them.)
    """
    from torchvision import models

    seen = im.resize(pair[0][:1], 256)
    torch.manual_seed(0)
    alexnet = models.alexnet().eval()
    # AlexNet at 256: 192 x 31 x 31 after the 2nd conv's ReLU, 256 x 15 x 15 after the 5th
    assert im.network_features(alexnet, seen, im.FEATURE_SOURCES["alex2"]).shape == (1, 192 * 31 * 31)
    assert im.network_features(alexnet, seen, im.FEATURE_SOURCES["alex5"]).shape == (1, 256 * 15 * 15)
    for metric, build in (("inception", models.inception_v3), ("effnet", models.efficientnet_b1),
                          ("swav", models.resnet50)):  # SwAV's hub model is torchvision's resnet50
        model = build(init_weights=False) if metric == "inception" else build()
        assert im.FEATURE_SOURCES[metric].layer in dict(model.named_modules()), metric


def test_sets_share_the_seen_side_and_equal_one_evaluate_per_set(pair):
    """evaluate_sets (the seen images resized, made grayscale and passed through
    each network once) gives every set exactly what evaluate gives it alone, and
    what the chunked per-metric computation gives (chunks of 4 over 6 images)."""
    seen, recon = pair
    rng = np.random.default_rng(1)
    other = np.clip(seen + 0.5 * rng.standard_normal(seen.shape), 0, 1).astype(np.float32)

    def loader(network, allow_download):
        if network == "clip_vitl14":
            return MeanColour()
        raise im.NetworkUnavailable("test")

    together = im.evaluate_sets(seen, [recon, other, seen], loader=loader)
    for got, r in zip(together, [recon, other, seen]):
        alone = im.evaluate(seen, r, loader=loader)
        for metric in im.METRICS:
            np.testing.assert_equal(got[metric]["value"], alone[metric]["value"])
            assert got[metric]["note"] == alone[metric]["note"]
    chunked = im.pixel_metrics(seen, [recon, other], batch=4)
    for got, r in zip(chunked, [recon, other]):
        a = im.resize(im.resize(seen, 256), 425).reshape(len(seen), -1).astype(np.float64)
        b = im.resize(im.resize(r, 256), 425).reshape(len(seen), -1).astype(np.float64)
        expected = np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])
        assert got["pixcorr"] == pytest.approx(expected, abs=1e-12)
        assert got["ssim"] == pytest.approx(im.ssim(seen, r), abs=1e-12)
    assert together[2]["pixcorr"]["value"] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="5 reconstructions"):
        im.evaluate_sets(seen, [recon, other[:5]], loader=loader)
