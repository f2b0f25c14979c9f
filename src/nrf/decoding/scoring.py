"""Score one reconstruction file against the images the subject saw.

Writes ``results/{dataset}/decoding/{backend}/metrics/{source}/{subject}.csv``,
one row per metric: metric, value, note, backend, source, subject. The eight
paper metrics (nrf.decoding.image_metrics.METRICS) always appear, NaN where the
metric's network is unavailable (the note says why). A backend that also
decodes image features (offline) adds ``feature_2way``: two-way
identification in the features file's ``embedding`` space, between the seen
images' features and the decoded ones. It is not one of the paper's columns.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from nrf.decoding import image_metrics
from nrf.decoding.reconstructions import read_reconstructions, to_unit
from nrf.features.cache import read_features, read_stimuli
from nrf.frames import write_frame

logger = logging.getLogger(__name__)

FEATURE_2WAY = "feature_2way"
COLUMNS = ("metric", "value", "note", "backend", "source", "subject")


def evaluate_decoded(seen, decoded, embedding, seen_features, *, space: str, device: str = "cpu",
                     allow_download: bool = False) -> dict[str, dict]:
    """{metric: {"value", "note"}}: the paper's eight metrics, plus the two-way
    identification in the decoder's own feature space when it decodes one.

    seen, decoded : (N, 3, H, W) in [0, 1]; embedding, seen_features : (N, D) or None
    """
    results = image_metrics.evaluate(seen, decoded, device=device, allow_download=allow_download)
    if embedding is not None:
        results[FEATURE_2WAY] = {
            "value": image_metrics.two_way_identification(seen_features, embedding),
            "note": f"two-way identification in the {space} embedding space (decoder's own features; not a paper column)",
        }
    return results


def score_reconstructions(recon_path, stimuli_path, features_path, out_csv, *, device: str = "cpu",
                          allow_download: bool = False, log: logging.Logger = logger) -> pd.DataFrame:
    """Every available metric of one (backend, source, subject) reconstruction file."""
    recon = read_reconstructions(recon_path)
    seen = to_unit(read_stimuli(stimuli_path, recon.image_ids))
    seen_features = None
    if recon.embedding is not None:
        seen_features = read_features(features_path, recon.image_ids, keys=("embedding",))["embedding"]
    results = evaluate_decoded(
        seen, to_unit(recon.images), recon.embedding, seen_features, device=device, allow_download=allow_download,
        space=recon.attrs.get("feature_space") or "features file embedding",
    )
    rows = [
        {"metric": metric, "value": r["value"], "note": r["note"], "backend": recon.attrs.get("backend", ""),
         "source": recon.attrs.get("source", ""), "subject": recon.attrs.get("subject", "")}
        for metric, r in results.items()
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for row in rows:
        shown = row["note"] if np.isnan(row["value"]) else f"{row['value']:.4f} ({row['note']})"
        log.info("%s: %s", row["metric"], shown)
    write_frame(table, out_csv, "decoding_metrics")
    return table
