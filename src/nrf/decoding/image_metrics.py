"""Image-reconstruction metrics, computed as MindEye2's final evaluation does.

The paper scores decoded images with MindEye2's evaluation suite (Scotti et
al. 2024, ``src/final_evaluations.ipynb``). This module reproduces each metric
to the letter, on NumPy arrays:

- every image is first resized to 256 x 256 (bilinear, no antialiasing, as
  torchvision 0.16 resized tensors; no centre crop anywhere);
- PixCorr: resize to 425, Pearson r per image over all 3 x 425 x 425 values,
  mean over images;
- SSIM: resize to 425, ``skimage.color.rgb2gray``, then scikit-image's
  ``structural_similarity`` with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1``, mean over images;
- two-way identification (AlexNet features.4 / features.11 at 256, InceptionV3
  avgpool at 342, CLIP ViT-L/14 image embedding at 224): for reconstruction
  j, the share of the other seen images i whose features correlate with
  reconstruction j *strictly less* than seen image j's do; chance is 0.5;
- EfficientNet-B1 avgpool at 255 and SwAV ResNet-50 avgpool at 224: mean
  correlation distance (1 - Pearson r) between each seen image and its
  reconstruction; lower is better.

The networks are torchvision's, open_clip's and torch.hub's with their
published weights. A network whose weights cannot be had gives NaN with the
reason (:class:`NetworkUnavailable`); never a number from random weights.

Shapes: images are (N, 3, H, W) float in [0, 1]; features are (N, D).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# torch is imported where it is used, so the metric names above can be read
# by the table rules, whose environment has no torch.
logger = logging.getLogger(__name__)

#: The paper's eight semantic-level columns, in its order.
METRICS = ("pixcorr", "ssim", "alex2", "alex5", "inception", "clip", "effnet", "swav")
#: Column titles as the paper prints them.
METRIC_TITLES = {
    "pixcorr": "PixCorr",
    "ssim": "SSIM",
    "alex2": "Alex(2)",
    "alex5": "Alex(5)",
    "inception": "IncepT",
    "clip": "CLIP",
    "effnet": "Eff",
    "swav": "SwAV",
}
LOWER_IS_BETTER = frozenset({"effnet", "swav"})

EVAL_SIZE = 256  # every image is brought to this size first
PIXEL_SIZE = 425  # PixCorr and SSIM are computed at this size
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class NetworkUnavailable(RuntimeError):
    """A feature network whose published weights cannot be loaded."""


# -- images --------------------------------------------------------------------


def check_images(images, name: str = "images") -> np.ndarray:
    """``images`` as (N, 3, H, W) float32, checked to lie in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: expected (N, 3, H, W) images, got shape {images.shape}")
    if images.size and (np.nanmin(images) < 0 or np.nanmax(images) > 1):
        raise ValueError(f"{name}: values must lie in [0, 1], got [{images.min():.3g}, {images.max():.3g}]")
    return images


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 3, H, W) -> (N, 3, size, size), bilinear without antialiasing.

    torchvision's ``Resize`` on tensors with ``antialias=False`` is exactly
    ``interpolate(mode="bilinear", align_corners=False)``; images already of
    that size are returned unchanged, as ``Resize`` does.
    """
    # torch: heavy; table jobs read the metric names without it
    import torch
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images
    # channels-last: torch's bilinear kernel vectorises better there (~2x on
    # one core, 64 -> 256 -> 425), and gives the same values bit for bit
    x = torch.from_numpy(np.ascontiguousarray(images)).contiguous(memory_format=torch.channels_last)
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return out.contiguous().numpy()


def _checked(images, name: str, n: int | None = None) -> np.ndarray:
    """Checked images; ``n`` the number of seen images they must match."""
    images = check_images(images, name)
    if n is not None and len(images) != n:
        raise ValueError(f"{n} seen images but {len(images)} reconstructions")
    if len(images) < 2:
        raise ValueError("need at least 2 image pairs")
    return images


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# -- pixel-level metrics -------------------------------------------------------


def pixel_metrics(seen, recons: Sequence, *, metrics: Sequence[str] = ("pixcorr", "ssim"),
                  batch: int = 64) -> list[dict[str, float]]:
    """PixCorr and SSIM (those of them in ``metrics``) of several reconstruction
    sets of the same seen images: [{metric: value}] in the order of ``recons``.

    Each chunk of seen images is resized (to 256, then 425), centred and made
    grayscale once for every set, and each chunk of a reconstruction set is
    resized once for both metrics; the operations per image are those of
    :func:`pixcorr` and :func:`ssim`, so the values equal theirs bit for bit
    (a unit test checks).
    """
    seen = _checked(seen, "seen")
    recons = [_checked(r, "recon", len(seen)) for r in recons]
    want_r, want_s = "pixcorr" in metrics, "ssim" in metrics
    if want_s:
        # scikit-image: optional; only scoring needs it
        from skimage.color import rgb2gray
    dot = functools.partial(np.einsum, "ij,ij->i")
    rs: list[list] = [[] for _ in recons]
    ss: list[list] = [[] for _ in recons]
    for part in _chunks(len(seen), batch):
        n = part.stop - part.start
        big_seen = resize(resize(seen[part], EVAL_SIZE), PIXEL_SIZE)
        if want_r:
            # float64 as np.corrcoef in MindEye2; einsum makes no (n, 3 x 425 x 425) temporaries
            a = big_seen.reshape(n, -1).astype(np.float64)
            a -= a.mean(axis=1, keepdims=True)
            aa = dot(a, a)
        if want_s:
            seen_terms = [_ssim_seen_terms(im) for im in rgb2gray(big_seen.transpose(0, 2, 3, 1))]
        del big_seen
        for k, recon in enumerate(recons):
            big = resize(resize(recon[part], EVAL_SIZE), PIXEL_SIZE)
            if want_r:
                b = big.reshape(n, -1).astype(np.float64)
                b -= b.mean(axis=1, keepdims=True)
                rs[k].append(dot(a, b) / np.sqrt(aa * dot(b, b)))
                del b
            if want_s:
                for terms, rec in zip(seen_terms, rgb2gray(big.transpose(0, 2, 3, 1))):
                    ss[k].append(_ssim_with_seen(rec, terms))
    out = []
    for r, s_ in zip(rs, ss):
        scores = {}
        if want_r:
            scores["pixcorr"] = float(np.mean(np.concatenate(r)))
        if want_s:
            scores["ssim"] = float(np.mean(s_))
        out.append(scores)
    return out


# SSIM as MindEye2 calls scikit-image's structural_similarity(recon, seen,
# gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
# data_range=1.0), written out so that the seen image's two filtered maps are
# computed once for every reconstruction set instead of once per set (two of
# the five Gaussian filters per pair). Same filter calls, same expressions in
# the same order: the values equal scikit-image's bit for bit (unit test).
_SSIM_FILTER = dict(sigma=1.5, truncate=3.5, mode="reflect")  # 11 taps, as Wang et al. (2004)
_SSIM_C1, _SSIM_C2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2  # (K1 R)^2, (K2 R)^2 with data_range R = 1
_SSIM_PAD = int(3.5 * 1.5 + 0.5)  # the filter's radius, cropped from each border before the mean


def _ssim_seen_terms(seen_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the seen image, its local mean, its local mean square)."""
    # scikit-image: optional; only scoring needs it
    from skimage.filters import gaussian

    seen_gray = seen_gray.astype(np.result_type(seen_gray.dtype, np.float32), copy=False)
    return seen_gray, gaussian(seen_gray, **_SSIM_FILTER), gaussian(seen_gray * seen_gray, **_SSIM_FILTER)


def _ssim_with_seen(recon_gray: np.ndarray, seen_terms) -> float:
    """Mean SSIM of one grayscale reconstruction against a seen image's terms."""
    # scikit-image: optional; only scoring needs it
    from skimage.filters import gaussian
    from skimage.util import crop

    im2, uy, uyy = seen_terms
    im1 = recon_gray.astype(np.result_type(recon_gray.dtype, np.float32), copy=False)
    ux = gaussian(im1, **_SSIM_FILTER)
    uxx = gaussian(im1 * im1, **_SSIM_FILTER)
    uxy = gaussian(im1 * im2, **_SSIM_FILTER)
    vx = 1.0 * (uxx - ux * ux)
    vy = 1.0 * (uyy - uy * uy)
    vxy = 1.0 * (uxy - ux * uy)
    a1, a2, b1, b2 = 2 * ux * uy + _SSIM_C1, 2 * vxy + _SSIM_C2, ux**2 + uy**2 + _SSIM_C1, vx + vy + _SSIM_C2
    return float(crop((a1 * a2) / (b1 * b2), _SSIM_PAD).mean(dtype=np.float64))


def pixcorr(seen, recon, *, batch: int = 64) -> float:
    """Mean over images of the Pearson r between seen and reconstructed pixels at 425 x 425.

    seen, recon : (N, 3, H, W) in [0, 1]
    """
    return pixel_metrics(seen, [recon], metrics=("pixcorr",), batch=batch)[0]["pixcorr"]


def ssim(seen, recon, *, batch: int = 64) -> float:
    """Mean SSIM of grayscale images at 425 x 425 (scikit-image, MindEye2's settings).

    seen, recon : (N, 3, H, W) in [0, 1]
    """
    return pixel_metrics(seen, [recon], metrics=("ssim",), batch=batch)[0]["ssim"]


# -- feature-level metrics -----------------------------------------------------


def _check_features(seen_feats, recon_feats) -> tuple[np.ndarray, np.ndarray]:
    seen = np.asarray(seen_feats, dtype=np.float64)
    recon = np.asarray(recon_feats, dtype=np.float64)
    seen, recon = seen.reshape(len(seen), -1), recon.reshape(len(recon), -1)
    if seen.shape != recon.shape or len(seen) < 2:
        raise ValueError(f"features must be two (N >= 2, D) arrays of one shape, got {seen.shape} and {recon.shape}")
    return seen, recon


def _standardise_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def two_way_identification(seen_feats, recon_feats) -> float:
    """Two-way identification accuracy (chance 0.5), MindEye2's definition.

    seen_feats, recon_feats : (N, D); row j of each belongs to test image j.
    r[i, j] = corr(seen_i, recon_j); reconstruction j scores the share of
    i != j with r[i, j] < r[j, j] (strict), and the result is the mean over j.
    """
    seen, recon = _check_features(seen_feats, recon_feats)
    r = _standardise_rows(seen) @ _standardise_rows(recon).T  # (N seen, N recon)
    congruent = np.diag(r)
    # strict, with equal correlations as ties: identical rows can differ by a
    # rounding step, depending on how the BLAS kernel blocks the product
    wins = (congruent[None, :] - r > 1e-12).sum(axis=0)
    return float(wins.mean() / (len(seen) - 1))


def correlation_distance(seen_feats, recon_feats) -> float:
    """Mean over images of 1 - Pearson r(seen_i, recon_i) (scipy's correlation distance).

    seen_feats, recon_feats : (N, D)
    """
    seen, recon = _check_features(seen_feats, recon_feats)
    r = (_standardise_rows(seen) * _standardise_rows(recon)).sum(axis=1)
    return float(np.mean(1.0 - r))


# -- feature networks ----------------------------------------------------------


@dataclass(frozen=True)
class FeatureSource:
    """Where a metric's features come from.

    network : key of the network in NETWORK_BUILDERS
    layer   : the graph node whose output is the feature (None: the model's output)
    size    : square input size in pixels
    mean, std : per-channel normalisation after resizing
    score   : "two_way" or "distance"
    """

    network: str
    layer: str | None
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    score: str


FEATURE_SOURCES = {
    "alex2": FeatureSource("alexnet", "features.4", 256, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    "alex5": FeatureSource("alexnet", "features.11", 256, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    "inception": FeatureSource("inception_v3", "avgpool", 342, IMAGENET_MEAN, IMAGENET_STD, "two_way"),
    "clip": FeatureSource("clip_vitl14", None, 224, CLIP_MEAN, CLIP_STD, "two_way"),
    "effnet": FeatureSource("efficientnet_b1", "avgpool", 255, IMAGENET_MEAN, IMAGENET_STD, "distance"),
    "swav": FeatureSource("swav_resnet50", "avgpool", 224, IMAGENET_MEAN, IMAGENET_STD, "distance"),
}


#: Each torchvision network's weights and the file torch.hub caches them as
#: (``Path(weights.url).name``; a unit test holds these to torchvision's), so
#: that an offline job with no cached weights says n/a without importing
#: torchvision (1.4 CPU-seconds) or open_clip (1.9 s).
TORCHVISION_WEIGHTS = {
    "alexnet": ("AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt-7be5be79.pth"),
    "inception_v3": ("Inception_V3_Weights.IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth"),
    "efficientnet_b1": ("EfficientNet_B1_Weights.IMAGENET1K_V2", "efficientnet_b1-c27df63c.pth"),
}
#: The Hugging Face repository open_clip reads ViT-L-14's OpenAI weights from
#: (``open_clip.get_pretrained_cfg("ViT-L-14", "openai")["hf_hub"]``; unit test).
CLIP_HF_REPO = "timm/vit_large_patch14_clip_224.openai"


def _torchvision_weights(network: str):
    from torchvision import models  # torchvision: heavy; only the metric networks need it

    return {
        "alexnet": (models.alexnet, models.AlexNet_Weights.IMAGENET1K_V1),
        "inception_v3": (models.inception_v3, models.Inception_V3_Weights.DEFAULT),
        "efficientnet_b1": (models.efficientnet_b1, models.EfficientNet_B1_Weights.DEFAULT),
    }[network]


def _hub_checkpoint(url: str) -> Path:
    import torch  # torch: heavy; table jobs read the metric names without it

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _unavailable(what: str, where, error: Exception | None = None) -> NetworkUnavailable:
    detail = (f": {type(error).__name__}: {error}" if error
              else f"; not in the local cache ({where}) and downloads are off")
    return NetworkUnavailable(f"{what} weights unavailable{detail}")


def _build_torchvision(network: str, allow_download: bool) -> torch.nn.Module:
    name, checkpoint = TORCHVISION_WEIGHTS[network]
    cached = _hub_checkpoint(checkpoint)
    if not allow_download and not cached.is_file():
        raise _unavailable(f"torchvision {network} ({name})", cached)
    build, weights = _torchvision_weights(network)
    try:
        return build(weights=weights)  # raises rather than fall back to random weights
    except Exception as error:  # noqa: BLE001 - any failure to fetch or read the weights
        raise _unavailable(f"torchvision {network} ({weights})", cached, error) from error


SWAV_HUB = ("facebookresearch/swav:main", "resnet50")
SWAV_CHECKPOINT = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"


def _build_swav(allow_download: bool) -> torch.nn.Module:
    import torch  # torch: heavy; table jobs read the metric names without it

    repo_dir = Path(torch.hub.get_dir()) / "facebookresearch_swav_main"
    cached = _hub_checkpoint(SWAV_CHECKPOINT)
    if not allow_download and not (repo_dir.is_dir() and cached.is_file()):
        raise _unavailable("torch.hub SwAV ResNet-50", f"{repo_dir}, {cached}")
    try:
        return torch.hub.load(*SWAV_HUB, trust_repo=True, skip_validation=not allow_download)
    except Exception as error:  # noqa: BLE001
        raise _unavailable("torch.hub SwAV ResNet-50", cached, error) from error


def _build_clip(allow_download: bool) -> torch.nn.Module:
    """open_clip's ViT-L-14 with OpenAI's weights (the model ``clip.load("ViT-L/14")`` gives).

    MindEye2 ran OpenAI's ``clip`` package, in half precision on a GPU; this
    model holds the same weights (QuickGELU) and runs in float32, so the
    features agree up to rounding.
    """
    what = "open_clip ViT-L-14 (openai)"
    pretrained = "openai"
    if not allow_download:
        from huggingface_hub import try_to_load_from_cache  # huggingface_hub: optional; the offline cache look-up

        names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        found = [try_to_load_from_cache(CLIP_HF_REPO, name) for name in names]
        found = [p for p in found if isinstance(p, str)]
        if not found:
            raise _unavailable(what, f"Hugging Face cache, {CLIP_HF_REPO}")
        pretrained = found[0]
    # open_clip: heavy, only the CLIP metric needs it; torch: as above
    import open_clip
    import torch

    class ClipImageEmbedding(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.encode_image(x)

    try:
        model = open_clip.create_model("ViT-L-14-quickgelu", pretrained=pretrained, require_pretrained=True)
    except Exception as error:  # noqa: BLE001
        raise _unavailable(what, "Hugging Face cache", error) from error
    return ClipImageEmbedding(model)


def load_network(network: str, *, allow_download: bool = True) -> torch.nn.Module:
    """A feature network with its published weights, in eval mode.

    Raises NetworkUnavailable (with the reason) when the weights cannot be had;
    with ``allow_download=False`` only the local torch-hub / Hugging Face
    caches are read.
    """
    if network in ("alexnet", "inception_v3", "efficientnet_b1"):
        model = _build_torchvision(network, allow_download)
    elif network == "swav_resnet50":
        model = _build_swav(allow_download)
    elif network == "clip_vitl14":
        model = _build_clip(allow_download)
    else:
        raise ValueError(f"unknown network {network!r}")
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=None)
def _load_once(network: str, allow_download: bool) -> "torch.nn.Module | str":
    """The network, or why it is unavailable. The reason is kept as text: a cached
    exception raised again gathers every frame it passes through into its
    traceback, and with them each scored set's images, for the whole process."""
    try:
        return load_network(network, allow_download=allow_download)
    except NetworkUnavailable as error:
        return str(error)


def shared_network(network: str, *, allow_download: bool = True) -> torch.nn.Module:
    """:func:`load_network`, once per process, a failure included: a job that
    scores many reconstruction sets (every adaptation cell) loads each network once."""
    result = _load_once(network, bool(allow_download))
    if isinstance(result, str):
        raise NetworkUnavailable(result)
    return result


def network_features(model: torch.nn.Module, images: np.ndarray, source: FeatureSource, *,
                     device: str = "cpu", batch: int = 32) -> np.ndarray:
    """Features of ``images`` ((N, 3, 256, 256) in [0, 1]) at ``source.layer``, as (N, D) float32."""
    # torchvision: heavy, only the metric networks need it; torch: as above
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    net = model if source.layer is None else create_feature_extractor(model, return_nodes=[source.layer])
    net = net.to(device)
    mean = torch.tensor(source.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(source.std, device=device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for part in _chunks(len(images), batch):
            x = torch.from_numpy(resize(images[part], source.size)).to(device)
            y = net((x - mean) / std)
            y = y if source.layer is None else y[source.layer]
            out.append(y.float().flatten(1).cpu().numpy())
    return np.concatenate(out)


def evaluate(seen, recon, *, metrics: Sequence[str] = METRICS, device: str = "cpu", allow_download: bool = True,
             loader: Callable[..., torch.nn.Module] = shared_network) -> dict[str, dict]:
    """Every metric in ``metrics`` for one set of reconstructions.

    seen, recon : (N, 3, H, W) in [0, 1]; row j of each is test image j.

    Returns {metric: {"value": float (NaN if unavailable), "note": str}};
    the note names the network or why it is missing. ``loader(network,
    allow_download=...)`` is :func:`shared_network` unless a caller supplies
    its own networks.
    """
    return evaluate_sets(seen, [recon], metrics=metrics, device=device, allow_download=allow_download,
                         loader=loader)[0]


def evaluate_sets(seen, recons: Sequence, *, metrics: Sequence[str] = METRICS, device: str = "cpu",
                  allow_download: bool = True,
                  loader: Callable[..., torch.nn.Module] = shared_network) -> list[dict[str, dict]]:
    """:func:`evaluate` for several reconstruction sets of the same seen images,
    in the order of ``recons``: the seen images are resized, made grayscale and
    passed through each network once for all sets (the values equal those of
    one :func:`evaluate` per set)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {METRICS}")
    seen = _checked(seen, "seen")
    recons = [_checked(r, "recon", len(seen)) for r in recons]
    results: list[dict[str, dict]] = [{} for _ in recons]
    pixel = [m for m in ("pixcorr", "ssim") if m in metrics]
    notes = {"pixcorr": "pixels at 425x425", "ssim": "grayscale at 425x425"}
    if pixel:
        for out, scores in zip(results, pixel_metrics(seen, recons, metrics=pixel)):
            out.update({m: {"value": scores[m], "note": notes[m]} for m in pixel})
    networks: dict[str, torch.nn.Module | str] = {}  # a network, or why it is unavailable
    for metric in (m for m in metrics if m in FEATURE_SOURCES):
        source = FEATURE_SOURCES[metric]
        if source.network not in networks:
            try:
                networks[source.network] = loader(source.network, allow_download=allow_download)
            except NetworkUnavailable as error:  # kept as text: the exception's traceback holds this frame
                networks[source.network] = str(error)
                logger.warning("%s: n/a, %s", metric, networks[source.network])
        model = networks[source.network]
        if isinstance(model, str):
            for out in results:
                out[metric] = {"value": float("nan"), "note": f"n/a: {model}"}
            continue
        seen_f = network_features(model, resize(seen, EVAL_SIZE), source, device=device)
        score = two_way_identification if source.score == "two_way" else correlation_distance
        for out, recon in zip(results, recons):
            recon_f = network_features(model, resize(recon, EVAL_SIZE), source, device=device)
            value = score(seen_f, recon_f)  # seen features first: the metric is not symmetric
            out[metric] = {"value": value, "note": f"{source.network} {source.layer or 'output'} at {source.size}"}
            logger.info("%s = %.4f", metric, value)
    return results
