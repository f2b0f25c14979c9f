"""Image features for NRF's image block: extractors and their cache.

``get_extractor(name, **options)`` builds one of :data:`EXTRACTORS`:

- ``clip_vitb16``: frozen OpenAI CLIP ViT-B/16 (:class:`nrf.features.clip.ClipViTB16`),
  the paper's image block, for real NSD.
- ``filterbank``: a weight-free filter bank
  (:class:`nrf.features.filterbank.FilterBankExtractor`), the simulated default.
- ``alexnet``: torchvision's ImageNet AlexNet at 227² (:class:`nrf.features.alexnet.AlexNetExtractor`),
  fWRF's features on NSD.

Extractor modules are imported on demand, so choosing the filter bank never
imports open_clip.
"""

from __future__ import annotations

from nrf.features.base import FEATURE_KEYS, Extractor, check_features

EXTRACTORS = ("clip_vitb16", "filterbank", "alexnet")

__all__ = ["EXTRACTORS", "FEATURE_KEYS", "Extractor", "check_features", "get_extractor"]


def get_extractor(name: str, **options) -> Extractor:
    """The extractor called ``name``, built with keyword ``options``.

    >>> get_extractor("clip_vitb16", weights="openai", device="cuda")  # doctest: +SKIP
    """
    if name == "clip_vitb16":
        from nrf.features.clip import ClipViTB16

        return ClipViTB16(**options)
    if name == "filterbank":
        from nrf.features.filterbank import FilterBankExtractor

        return FilterBankExtractor(**options)
    if name == "alexnet":
        from nrf.features.alexnet import AlexNetExtractor

        return AlexNetExtractor(**options)
    raise ValueError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
