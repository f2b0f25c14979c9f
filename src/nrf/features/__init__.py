"""Image features for NRF's image block: extractors and their cache.

The extractors (:data:`nrf.features.extractors.EXTRACTORS`) are built by
:func:`nrf.features.extractors.get_extractor`, which imports torch; this
package itself imports only the torch-free extractor interface, so a job that
reads the cache (:mod:`nrf.features.cache`) imports no torch.
"""

from __future__ import annotations

from nrf.features.base import FEATURE_KEYS, Extractor, check_features

__all__ = ["FEATURE_KEYS", "Extractor", "check_features"]
