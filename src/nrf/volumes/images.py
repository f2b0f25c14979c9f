"""Images a volume is queried for: a folder of PNG/JPEG files read as NSD's
stimuli were, and the pipeline's own image sets exported from the stimuli.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nrf.data.simulate import CATEGORIES, SimulatedBrain, SimulationParams
from nrf.features.cache import read_stimuli
from nrf.volumes.grid import VolumeError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------------------
# Images and features
# ---------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Images read from a folder: names (file names), sha256 of each file, pixels (n, S, S, 3) uint8."""

    names: list[str]
    sha256: list[str]
    pixels: np.ndarray


def read_image_folder(folder, size: int) -> ImageSet:
    """Every PNG/JPEG in ``folder`` (sorted by name), centre-cropped to a square and
    resized to ``size`` px (bicubic) as NSD's stimuli were; an unreadable file is named."""
    from PIL import Image, UnidentifiedImageError  # pillow: optional; only the image-reading jobs need it

    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VolumeError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images")
    names, hashes, pixels = [], [], []
    for path in files:
        raw = path.read_bytes()
        try:
            with Image.open(path) as im:
                im.load()
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise VolumeError(f"{path}: unreadable image ({error})") from None
        pixels.append(_nsd_resize(rgb, size))
        names.append(path.name)
        hashes.append(hashlib.sha256(raw).hexdigest())
    return ImageSet(names, hashes, np.stack(pixels))


def _nsd_resize(rgb, size: int) -> np.ndarray:
    """Centre crop to a square, then bicubic resize to ``size``: (size, size, 3) uint8."""
    from PIL import Image  # pillow: optional; only the image-reading jobs need it

    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square, dtype=np.uint8)


# ---------------------------------------------------------------------------
# Image sets for the pipeline's queries
# ---------------------------------------------------------------------------
def export_images(stimuli_path, image_ids, folder) -> list[Path]:
    """Write images ``image_ids`` of an NSD stimuli file as ``{folder}/{id:06d}.png`` (lossless, so
    their features equal the cached ones); the folder appears only when complete."""
    from PIL import Image  # pillow: optional; only the image-writing jobs need it

    folder = Path(folder)
    ids = np.asarray(image_ids, dtype=np.int64)
    if not len(ids):
        raise VolumeError(f"{folder}: no images to export")
    pixels = read_stimuli(stimuli_path, ids)
    tmp = folder.with_name(".part-" + folder.name)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for i, im in zip(ids, pixels):
            Image.fromarray(im).save(tmp / f"{i:06d}.png", optimize=False)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(folder.iterdir())


def select_images(test_ids, imageset: str, n: int, *, simulation: dict | None = None, subjects=None,
                  seed: int = 0) -> np.ndarray:
    """The first ``n`` of a subject's test images (``imageset`` "test"), or of those of one of the
    simulator's categories (``imageset`` a name in CATEGORIES; needs the simulation's parameters)."""
    test_ids = np.sort(np.asarray(test_ids, dtype=np.int64))
    if imageset == "test":
        return test_ids[:n]

    if imageset not in CATEGORIES:
        raise VolumeError(f"image set {imageset!r}: choose 'test' or one of the simulator's {CATEGORIES}")
    if simulation is None:
        raise VolumeError(f"image set {imageset!r} needs the simulator's categories: only on the simulated dataset")
    brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
    chosen = test_ids[brain.images["category"][test_ids] == CATEGORIES.index(imageset)][:n]
    if len(chosen) < 2:
        raise VolumeError(f"only {len(chosen)} test images of category {imageset!r}")
    return chosen


