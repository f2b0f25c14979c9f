"""The extractor registry: ``get_extractor(name, **options)`` builds one of :data:`EXTRACTORS`.

- ``clip_vitb16``: frozen OpenAI CLIP ViT-B/16 (:class:`nrf.features.clip.ClipViTB16`),
  the paper's image block, for real NSD.
- ``filterbank``: a weight-free filter bank
  (:class:`nrf.features.filterbank.FilterBankExtractor`), the simulated default.
- ``alexnet``: torchvision's ImageNet AlexNet at 227² (:class:`nrf.features.alexnet.AlexNetExtractor`),
  fWRF's features on NSD.

Importing it imports torch (the filter bank and AlexNet run in torch), so it lives
apart from :mod:`nrf.features`, which torch-free jobs import for the cache's readers;
open_clip and torchvision are still imported only when CLIP or AlexNet is built, so
choosing the filter bank never imports them.
"""

from __future__ import annotations

from nrf.features.alexnet import AlexNetExtractor
from nrf.features.base import Extractor
from nrf.features.clip import ClipViTB16
from nrf.features.filterbank import FilterBankExtractor

EXTRACTORS = ("clip_vitb16", "filterbank", "alexnet")
_CLASSES = {"clip_vitb16": ClipViTB16, "filterbank": FilterBankExtractor, "alexnet": AlexNetExtractor}


def get_extractor(name: str, **options) -> Extractor:
    """The extractor called ``name``, built with keyword ``options``.

    >>> get_extractor("clip_vitb16", weights="openai", device="cuda")  # doctest: +SKIP
    """
    if name not in _CLASSES:
        raise ValueError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    return _CLASSES[name](**options)
