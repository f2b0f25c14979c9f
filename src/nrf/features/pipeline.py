"""The feature rule's work: which images, which extractor, one cached file."""

from __future__ import annotations

from nrf.data import nsd_tree
from nrf.data.nsd_layout import tree_root
from nrf.devices import resolve_device
from nrf.features.extractors import get_extractor
from nrf.features.cache import extract_to_hdf5


def extractor_options(name: str, options: dict, device: str) -> dict:
    """Constructor options of an extractor from the config's features section."""
    if name == "clip_vitb16":
        return {
            "weights": options["clip_weights"],
            "layers": tuple(options["clip_layers"]),
            "device": resolve_device(device),
            "batch_size": options["batch_size"],
            "precision": options["clip_precision"],
        }
    if name == "alexnet":
        return {
            "weights": options["alexnet_weights"],
            "device": resolve_device(device),
            "batch_size": options["batch_size"],
        }
    return {}


def extract_seen_images(name, options, *, stimuli_path, expdesign_path, sessions, trials_per_session,
                        out_path, device, log):
    """Extract features for every image the configured subjects saw in their
    sessions (read from the experiment design) and write the cache.

    sessions : {subject: number of sessions read}
    """
    root = tree_root(expdesign_path)
    ids = nsd_tree.images_seen(root, sessions, trials_per_session)
    log.info("%d images seen by %s in their sessions", len(ids), ", ".join(sessions))
    extractor = get_extractor(name, **extractor_options(name, options, device))
    extract_to_hdf5(extractor, stimuli_path, ids, out_path, batch_size=options["batch_size"], log=log)
