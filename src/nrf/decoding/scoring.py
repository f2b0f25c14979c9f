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
    return evaluate_decoded_sets(seen, [(decoded, embedding)], seen_features, space=space, device=device,
                                 allow_download=allow_download)[0]


def evaluate_decoded_sets(seen, sets, seen_features, *, space: str, device: str = "cpu",
                          allow_download: bool = False) -> list[dict[str, dict]]:
    """:func:`evaluate_decoded` for several decoded sets of the same seen images
    (``sets``: [(decoded images, decoded embedding or None)]), the seen side
    computed once (nrf.decoding.image_metrics.evaluate_sets); in their order."""
    all_results = image_metrics.evaluate_sets(seen, [decoded for decoded, _ in sets], device=device,
                                              allow_download=allow_download)
    for results, (_, embedding) in zip(all_results, sets):
        if embedding is not None:
            results[FEATURE_2WAY] = {
                "value": image_metrics.two_way_identification(seen_features, embedding),
                "note": f"two-way identification in the {space} embedding space (decoder's own features; "
                        "not a paper column)",
            }
    return all_results


def score_reconstructions(recon_path, stimuli_path, features_path, out_csv, *, device: str = "cpu",
                          allow_download: bool = False, log: logging.Logger = logger) -> pd.DataFrame:
    """Every available metric of one (backend, source, subject) reconstruction file."""
    return score_reconstruction_files([recon_path], stimuli_path, features_path, [out_csv], device=device,
                                      allow_download=allow_download, log=log)[0]


def score_reconstruction_files(recon_paths, stimuli_path, features_path, out_csvs, *, device: str = "cpu",
                               allow_download: bool = False, log: logging.Logger = logger) -> list[pd.DataFrame]:
    """:func:`score_reconstructions` for several files (one CSV each, in order):
    files of the same test images and feature space are scored together, the
    seen side of every metric computed once (:func:`evaluate_decoded_sets`)."""
    if len(recon_paths) != len(out_csvs):
        raise ValueError(f"{len(recon_paths)} reconstruction files but {len(out_csvs)} output CSVs")
    recons = [read_reconstructions(path) for path in recon_paths]
    groups: dict[tuple, list[int]] = {}
    for k, recon in enumerate(recons):
        space = recon.attrs.get("feature_space") or "features file embedding"
        groups.setdefault((recon.image_ids.tobytes(), space), []).append(k)
    tables: list[pd.DataFrame | None] = [None] * len(recons)
    for (_, space), members in groups.items():
        ids = recons[members[0]].image_ids
        seen = to_unit(read_stimuli(stimuli_path, ids))
        seen_features = None
        if any(recons[k].embedding is not None for k in members):
            seen_features = read_features(features_path, ids, keys=("embedding",))["embedding"]
        scored = evaluate_decoded_sets(seen, [(to_unit(recons[k].images), recons[k].embedding) for k in members],
                                       seen_features, space=space, device=device, allow_download=allow_download)
        for k, results in zip(members, scored):
            attrs = recons[k].attrs
            rows = [{"metric": metric, "value": r["value"], "note": r["note"], "backend": attrs.get("backend", ""),
                     "source": attrs.get("source", ""), "subject": attrs.get("subject", "")}
                    for metric, r in results.items()]
            tables[k] = pd.DataFrame(rows, columns=list(COLUMNS))
            for row in rows:
                shown = row["note"] if np.isnan(row["value"]) else f"{row['value']:.4f} ({row['note']})"
                log.info("%s %s: %s", row["source"], row["metric"], shown)
            write_frame(tables[k], out_csvs[k], "decoding_metrics")
    return tables
