"""Semantic-level scores of the adaptation cells (Tables 2, 3, 7, 8, 9).

Every method's predicted test responses in a cell file (nrf.experiments.adaptation) are
decoded with the target subject's offline decoder and scored as the Table 1
sources are (nrf.decoding.scoring): one tidy CSV per target with n_train,
draw, method, metric, value, note.

Which methods are decoded: the paper reports semantic columns for NRF scratch
and the finetune ensemble at every N (Tables 2, 7-9), and for every method at
Table 3's N (its target only). Those are decoded; the other rows of our
adaptation tables (linear, average, single bases, held-out ensemble at other
N) show n/a in their semantic columns, which keeps the default run in budget
(each decoded method is a full PixCorr + SSIM + feature-network pass).
"""

from __future__ import annotations

import logging

import h5py
import pandas as pd

from nrf.checks import open_hdf5
from nrf.decoding.offline import read_decoder
from nrf.decoding.reconstructions import to_uint8, to_unit
from nrf.decoding.scoring import evaluate_decoded_sets
from nrf.experiments.methods import ENSEMBLE, SCRATCH
from nrf.features.cache import read_features, read_stimuli
from nrf.frames import write_frame

logger = logging.getLogger(__name__)

#: methods whose semantic columns the paper reports at every N (Tables 2, 7-9)
PAPER_ROWS = (SCRATCH, ENSEMBLE)


def decoded(method: str, n_train: int, every_method_at: int | None) -> bool:
    """Whether a cell's method is decoded (see the module docstring)."""
    return method in PAPER_ROWS or (every_method_at is not None and n_train == every_method_at)


def score_cells(decoder_path, cell_hdf5s, stimuli_path, features_path, out_csv, *, device: str = "cpu",
                allow_download: bool = False, every_method_at: int | None = None,
                log: logging.Logger = logger) -> pd.DataFrame:
    """Decode and score the paper's rows of every cell of one target (and every
    method at N = ``every_method_at``, Table 3's N for its target); write the tidy CSV."""
    decoder = read_decoder(decoder_path)
    # decode every cell first, grouped by its test images: the seen side of the
    # metrics (resizing, grayscale, feature networks) is then computed once per
    # group for all of the target's decoded methods
    groups: dict[bytes, dict] = {}
    for path in cell_hdf5s:
        with open_hdf5(path, what="adaptation cell file") as f:
            ids = f["image_ids"][()]
            group = groups.setdefault(ids.tobytes(), {"ids": ids, "rows": [], "sets": []})
            for method in f.values():
                if not isinstance(method, h5py.Group) or not decoded(method.attrs["method"], int(f.attrs["n_train"]),
                                                                     every_method_at):
                    continue
                images, embedding = decoder.predict(method["predictions"][()])
                # the same uint8 round trip as a reconstructions file
                group["sets"].append((to_unit(to_uint8(images)), embedding))
                group["rows"].append({"target": f.attrs["target"], "n_train": int(f.attrs["n_train"]),
                                      "draw": int(f.attrs["draw"]), "method": method.attrs["method"]})
        log.info("%s: decoded", path)
    rows = []
    for group in groups.values():
        if not group["sets"]:
            continue
        seen = to_unit(read_stimuli(stimuli_path, group["ids"]))
        seen_features = read_features(features_path, group["ids"], keys=("embedding",))["embedding"]
        scored = evaluate_decoded_sets(seen, group["sets"], seen_features, space="features file embedding",
                                       device=device, allow_download=allow_download)
        for row, results in zip(group["rows"], scored):
            rows.extend({**row, "metric": metric, "value": r["value"], "note": r["note"], "backend": "offline"}
                        for metric, r in results.items())
        log.info("scored %d decoded sets of %d test images (%d rows so far)", len(group["sets"]),
                 len(group["ids"]), len(rows))
    table = pd.DataFrame(rows)
    write_frame(table, out_csv, "adaptation_decoding")
    return table
