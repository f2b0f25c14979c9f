"""Query a trained NRF anywhere: brain volumes in MNI space, at any resolution, for any image.

:func:`query_volume` evaluates an NRF checkpoint (``nrf.encoding.train_encoder``)
for a folder of images on an MNI152 grid of any voxel size and writes a 4-D
NIfTI (X, Y, Z, n_images) float32 whose sform and qform (code 4, MNI) are
that grid, plus a JSON sidecar naming the checkpoint, the extractor, the
images (with their sha256) and the mask. ``nrf-volume`` is its command line.

- **The grid** is nilearn's MNI152 (2009) template box, corner
  (-98, -134, -72) mm, extent (196, 232, 188) mm, sampled every
  ``resolution`` mm: at 1 and 2 mm it is exactly the template's own grid.
- **The mask** is, by default, the region the model was trained on: grid
  points within one training voxel (the median spacing of the training
  coordinates) of a training voxel's MNI coordinate; ``mni-brain`` is
  nilearn's bundled MNI152 brain mask (offline), or a NIfTI mask in MNI space.
- **Features** of the new images come from the extractor the checkpoint was
  trained with, after the stimuli's preprocessing: a centre crop to a square
  and a resize to the training stimuli's side (NSD: 425 px; the simulator:
  its ``image_size``).
- **Evaluation** is chunked over grid points: each chunk's coordinate half of
  the first layer (``NRF.coord_code``) is computed once and reused for every
  image (``NRF.forward_codes``), so memory is bounded by ``chunk_points``
  whatever the resolution; the volume itself is assembled in a memory-mapped
  file beside the output.

Every check (images readable, resolution, checkpoint kind, feature sizes,
mask inside the box) runs before the first grid point is evaluated, and the
NIfTI appears under its name only when complete (``nrf.atomic``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import h5py
import nibabel as nib
import numpy as np
import torch

from nrf.atomic import atomic_output

logger = logging.getLogger(__name__)

#: nilearn's MNI152 (2009) template box: lower corner (mm) and extent (mm) per axis
MNI152_CORNER = np.array([-98.0, -134.0, -72.0])
MNI152_EXTENT = np.array([196.0, 232.0, 188.0])
MNI_CODE = 4  # NIfTI xform code "MNI_152"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NSD_STIMULUS_SIZE = 425


class VolumeError(ValueError):
    """Bad input to a volume query: the message names the file or value."""


# ---------------------------------------------------------------------------
# The grid and the mask
# ---------------------------------------------------------------------------
def mni_grid(resolution: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape (X, Y, Z), affine (4, 4)) of the MNI152 box sampled every ``resolution`` mm."""
    resolution = float(resolution)
    if not np.isfinite(resolution) or resolution <= 0:
        raise VolumeError(f"resolution must be a positive number of mm, got {resolution}")
    shape = tuple(int(n) for n in np.floor(MNI152_EXTENT / resolution + 1e-9).astype(int) + 1)
    affine = np.diag([resolution, resolution, resolution, 1.0])
    affine[:3, 3] = MNI152_CORNER
    return shape, affine


def grid_points(shape, affine, mask=None) -> np.ndarray:
    """(n, 3) float64 mm of the grid points (all, or where ``mask`` (X, Y, Z) is true), C-order."""
    ijk = np.argwhere(mask) if mask is not None else np.indices(shape).reshape(3, -1).T
    return nib.affines.apply_affine(affine, ijk)


def _world_to_index(points, affine) -> np.ndarray:
    return nib.affines.apply_affine(np.linalg.inv(affine), points)


def _check_inside_box(points, what: str) -> None:
    lo, hi = MNI152_CORNER, MNI152_CORNER + MNI152_EXTENT
    outside = ~np.all((points >= lo) & (points <= hi), axis=1)
    if outside.all():
        raise VolumeError(
            f"{what} lies entirely outside the MNI152 box {lo.tolist()}..{hi.tolist()} mm; "
            "is it in MNI space?")


def training_mask(coords_mm, shape, affine) -> np.ndarray:
    """(X, Y, Z) bool: grid points within one training voxel of a training coordinate.

    One training voxel is the median distance from a training coordinate to
    its nearest neighbour (NSD's 1.8 mm; the simulator's 4-4.6 mm).
    """
    from scipy.spatial import cKDTree

    coords_mm = np.asarray(coords_mm, dtype=np.float64)
    _check_inside_box(coords_mm, "the training voxels' coordinates")
    tree = cKDTree(coords_mm)
    spacing = float(np.median(tree.query(coords_mm, k=2)[0][:, 1])) if len(coords_mm) > 1 else 0.0
    # only grid points in the coordinates' bounding box (plus one spacing) can qualify
    lo = np.floor(_world_to_index(coords_mm.min(0, keepdims=True) - spacing, affine)[0]).astype(int)
    hi = np.ceil(_world_to_index(coords_mm.max(0, keepdims=True) + spacing, affine)[0]).astype(int)
    lo, hi = np.clip(lo, 0, np.array(shape) - 1), np.clip(hi, 0, np.array(shape) - 1)
    sub = np.indices(hi - lo + 1).reshape(3, -1).T + lo
    dist = tree.query(nib.affines.apply_affine(affine, sub), k=1)[0]
    near = sub[dist <= spacing * (1 + 1e-6)]
    mask = np.zeros(shape, bool)
    mask[tuple(near.T)] = True
    return mask


def mni_brain_mask(shape, affine) -> np.ndarray:
    """(X, Y, Z) bool: nilearn's bundled MNI152 brain mask (1 mm), nearest-resampled to the grid."""
    return resample_mask(_nilearn_brain_mask(), shape, affine)


@functools.lru_cache(maxsize=1)
def _nilearn_brain_mask():
    from nilearn.datasets import load_mni152_brain_mask

    img = load_mni152_brain_mask(resolution=1)
    return nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.uint8), img.affine)


def resample_mask(img, shape, affine, name: str = "mask") -> np.ndarray:
    """(X, Y, Z) bool: a 3-D mask image (nonzero = in) sampled at the grid points, nearest neighbour."""
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"{name}: a mask must be 3-D, got shape {data.shape}")
    inside = np.argwhere(data != 0)
    if not len(inside):
        raise VolumeError(f"{name}: the mask is empty")
    _check_inside_box(nib.affines.apply_affine(img.affine, inside), name)
    to_src = np.linalg.inv(img.affine) @ affine
    out = np.zeros(shape, bool)
    if np.allclose(to_src[:3, :3], np.diag(np.diag(to_src[:3, :3]))):  # axis-aligned: index each axis alone
        idx = [np.rint(to_src[a, a] * np.arange(shape[a]) + to_src[a, 3]).astype(int) for a in range(3)]
        ok = [(i >= 0) & (i < data.shape[a]) for a, i in enumerate(idx)]
        sub = data[np.ix_(idx[0][ok[0]], idx[1][ok[1]], idx[2][ok[2]])] != 0
        out[np.ix_(*ok)] = sub
    else:  # slice by slice, to bound memory
        for x in range(shape[0]):
            jk = np.indices(shape[1:]).reshape(2, -1).T
            ijk = np.rint(nib.affines.apply_affine(to_src, np.column_stack([np.full(len(jk), x), jk])))
            ijk = ijk.astype(int)
            ok = np.all((ijk >= 0) & (ijk < np.array(data.shape)), axis=1)
            plane = np.zeros(len(jk), bool)
            plane[ok] = data[tuple(ijk[ok].T)] != 0
            out[x] = plane.reshape(shape[1:])
    if not out.any():
        raise VolumeError(f"{name}: no grid point falls inside the mask")
    return out


def build_mask(mask: str, shape, affine, training_coords=None) -> np.ndarray:
    """The mask named by ``mask``: "training", "mni-brain", or a NIfTI file's path."""
    if mask == "training":
        if training_coords is None:
            raise VolumeError("mask 'training' needs the training voxels' coordinates (the prepared file)")
        return training_mask(training_coords, shape, affine)
    if mask == "mni-brain":
        return mni_brain_mask(shape, affine)
    path = Path(mask)
    if not path.exists():
        raise VolumeError(f"mask {mask!r} is neither 'training', 'mni-brain' nor an existing NIfTI file")
    try:
        img = nib.load(path)
    except Exception as error:  # nibabel raises several types for a bad file
        raise VolumeError(f"{path}: not a readable NIfTI mask ({error})") from None
    return resample_mask(img, shape, affine, name=str(path))


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
    from PIL import Image, UnidentifiedImageError

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
    from PIL import Image

    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square, dtype=np.uint8)


def load_nrf(checkpoint, device: str = "cpu"):
    """(NRF in eval mode, checkpoint dict); a checkpoint that is not an NRF is named."""
    from nrf.encoding import load_encoder

    path = Path(checkpoint)
    if not path.exists():
        raise VolumeError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a non-checkpoint
        raise VolumeError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "nrf":
        kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise VolumeError(f"{path}: not an NRF checkpoint (kind {kind!r}); only an NRF can be queried "
                          "at arbitrary coordinates")
    model, ckpt = load_encoder(path, device)
    return model, ckpt


def checkpoint_extractor(ckpt: dict, features_path=None) -> str:
    """The extractor a checkpoint was trained with, read off its features file."""
    path = Path(features_path or ckpt.get("features", ""))
    if not path.is_file():
        raise VolumeError(f"the checkpoint's features file {str(path)!r} is not here; name the extractor "
                          "(--extractor) or the features file (--features)")
    with h5py.File(path, "r") as f:
        return str(f.attrs["extractor"])


def _features_layers(ckpt: dict, features_path=None) -> tuple[int, int]:
    path = Path(features_path or ckpt.get("features", ""))
    if not path.is_file():
        raise VolumeError(f"the checkpoint's features file {str(path)!r} is not here; it records CLIP's layers "
                          "(--features)")
    with h5py.File(path, "r") as f:
        return tuple(int(x) for x in f.attrs["layers"])


def check_feature_sizes(features: dict, model_config: dict, checkpoint, extractor: str) -> None:
    """Raise, naming both, if the extractor's features do not fit the checkpoint's image block."""
    want = {"tokens_shallow": (model_config["n_tokens"], model_config["token_dim"]),
            "tokens_deep": (model_config["n_tokens"], model_config["token_dim"]),
            "embedding": (model_config["embedding_dim"],)}
    for key, shape in want.items():
        got = tuple(np.shape(features[key])[1:])
        if got != tuple(shape):
            raise VolumeError(f"{checkpoint}: expects {key} of shape {tuple(shape)} per image, extractor "
                              f"{extractor!r} gives {got}; was the model trained with another extractor?")


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------
def nrf_predictor(model, features: dict, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A function points (m, 3) mm -> (n_img, m) float32 predictions of these images.

    Each image's code (``NRF.image_code``) is computed once, here; each call
    computes its points' coordinate code once and reuses it for every image
    (``NRF.forward_codes``), so a call costs ~ n_img x m x width floats.
    """
    from nrf.devices import resolve_device

    dev = torch.device(resolve_device(device))
    feats = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=dev) for k, v in features.items()}
    with torch.no_grad():
        image_code = model.image_code(feats)

    @torch.no_grad()
    def predict(points: np.ndarray) -> np.ndarray:
        coord_code = model.coord_code(torch.as_tensor(np.asarray(points, dtype=np.float32), device=dev))
        return model.forward_codes(image_code, coord_code).float().cpu().numpy()

    return predict


def predict_points(predict: Callable, points, *, chunk_points: int = 8192) -> np.ndarray:
    """(n_img, n_points) float32: ``predict`` applied to ``chunk_points`` points at a time."""
    points = np.asarray(points)
    blocks = [predict(points[s:s + chunk_points]) for s in range(0, len(points), chunk_points)]
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)


def mask_chunks(mask: np.ndarray, affine, chunk_points: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The mask's points, slice by slice along x and at most ``chunk_points`` at a time:
    yields (x, (m, 2) in-slice (j, k) indices, (m, 3) MNI mm). Memory ~ one slice."""
    if chunk_points < 1:
        raise VolumeError(f"chunk_points must be >= 1, got {chunk_points}")
    for x in range(mask.shape[0]):
        jk = np.argwhere(mask[x])
        for s in range(0, len(jk), chunk_points):
            part = jk[s:s + chunk_points]
            ijk = np.column_stack([np.full(len(part), x), part])
            yield x, part, nib.affines.apply_affine(affine, ijk)


def fill_volume(predict: Callable, mask: np.ndarray, affine, n_img: int, scratch_dir, *,
                chunk_points: int = 8192) -> np.memmap:
    """(X, Y, Z, n_img) float32 volume, memory-mapped in ``scratch_dir``: ``predict`` (points
    (m, 3) mm -> (n_img, m)) at the mask's points, 0 elsewhere. Memory ~ one chunk and one slice."""
    vol = np.memmap(Path(scratch_dir) / "volume.f32", dtype=np.float32, mode="w+", shape=(*mask.shape, n_img))
    for x, jk, points in mask_chunks(mask, affine, chunk_points):
        vol[x, jk[:, 0], jk[:, 1]] = np.asarray(predict(points), dtype=np.float32).T
    return vol


def save_mni_nifti(data, affine, path) -> None:
    """Write float32 ``data`` on an MNI grid atomically: sform and qform = ``affine``, code 4 (MNI)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32) if not isinstance(data, np.memmap) else data, affine)
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=MNI_CODE)
    img.set_qform(affine, code=MNI_CODE)
    with atomic_output(path) as tmp:
        nib.save(img, tmp)


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_volume(predict: Callable, mask, affine, n_img: int, out_nifti, *, chunk_points: int = 8192) -> None:
    """Evaluate ``predict`` on the mask's grid points and write the 4-D MNI NIfTI atomically."""
    out_nifti = Path(out_nifti)
    out_nifti.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_nifti.parent, prefix=".scratch-") as scratch:
        vol = fill_volume(predict, mask, affine, n_img, scratch, chunk_points=chunk_points)
        save_mni_nifti(vol, affine, out_nifti)
        del vol


@dataclass
class QueryInputs:
    """Everything checked and loaded before evaluation starts."""

    model: torch.nn.Module
    ckpt: dict
    extractor: str
    images: ImageSet
    features: dict
    shape: tuple
    affine: np.ndarray
    mask: np.ndarray
    mask_name: str


def prepare_query(checkpoint, images, *, resolution: float, mask: str = "training", prepared=None,
                  features=None, extractor=None, extractor_options=None, stimulus_size=None,
                  device: str = "cpu") -> QueryInputs:
    """Load and check every input of a volume query (no grid point is evaluated yet)."""
    from nrf.data.prepared import load_prepared
    from nrf.features import get_extractor

    shape, affine = mni_grid(resolution)
    model, ckpt = load_nrf(checkpoint, device)
    name = extractor or checkpoint_extractor(ckpt, features)
    size = int(stimulus_size or NSD_STIMULUS_SIZE)
    image_set = images if isinstance(images, ImageSet) else read_image_folder(images, size)
    coords = None
    if mask == "training":
        prep_path = Path(prepared or ckpt.get("prepared", ""))
        if not prep_path.is_file():
            raise VolumeError(f"mask 'training' needs the checkpoint's prepared file {str(prep_path)!r}; name "
                              "it (--prepared) or use --mask mni-brain")
        coords = load_prepared(prep_path, splits=()).coords
    vol_mask = build_mask(mask, shape, affine, coords)
    options = dict(extractor_options or {})
    if name == "clip_vitb16" and "layers" not in options:
        options["layers"] = _features_layers(ckpt, features)
    extract = get_extractor(name, **options).extract
    check_feature_sizes(extract(image_set.pixels[:1]), ckpt["model_config"], checkpoint, name)  # fail fast
    feats = extract(image_set.pixels)
    return QueryInputs(model, ckpt, name, image_set, feats, shape, affine, vol_mask, mask)


def query_volume(checkpoint, images, out_nifti, *, resolution: float, mask: str = "training", prepared=None,
                 features=None, extractor=None, extractor_options=None, stimulus_size=None,
                 chunk_points: int = 8192, device: str = "cpu", log: logging.Logger | None = None) -> dict:
    """Evaluate an NRF checkpoint for a folder of images on the MNI152 grid at ``resolution`` mm.

    Writes ``out_nifti`` (X, Y, Z, n_images) float32 (0 outside the mask) and
    ``out_nifti`` + ``.json`` (the sidecar, also returned). See the module
    docstring for the grid, the mask and the features.
    """
    log = log or logger
    q = prepare_query(checkpoint, images, resolution=resolution, mask=mask, prepared=prepared,
                      features=features, extractor=extractor, extractor_options=extractor_options,
                      stimulus_size=stimulus_size, device=device)
    n_img, n_points = len(q.images.names), int(q.mask.sum())
    log.info("%s: %d images x %d grid points at %g mm (%s mask), chunks of %d", checkpoint, n_img, n_points,
             resolution, mask, chunk_points)
    write_volume(nrf_predictor(q.model, q.features, device), q.mask, q.affine, n_img, out_nifti,
                 chunk_points=chunk_points)
    sidecar = {
        "checkpoint": str(checkpoint), "checkpoint_sha256": _sha256(checkpoint),
        "subject": q.ckpt.get("subject"), "extractor": q.extractor,
        "stimulus_size": int(q.images.pixels.shape[1]),
        "images": [{"file": n, "sha256": h, "volume": i} for i, (n, h) in enumerate(zip(q.images.names,
                                                                                        q.images.sha256))],
        "mask": mask, "n_points": n_points, "resolution_mm": float(resolution),
        "shape": list(q.shape) + [n_img], "affine": q.affine.tolist(), "space": "MNI152 (xform code 4)",
        "outside_mask": 0.0,
    }
    with atomic_output(Path(str(out_nifti) + ".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1) + "\n")
    log.info("wrote %s", out_nifti)
    return sidecar


# ---------------------------------------------------------------------------
# Image sets for the pipeline's queries
# ---------------------------------------------------------------------------
def export_images(stimuli_path, image_ids, folder) -> list[Path]:
    """Write images ``image_ids`` of an NSD stimuli file as ``{folder}/{id:06d}.png`` (lossless, so
    their features equal the cached ones); the folder appears only when complete."""
    import os
    import shutil

    from PIL import Image

    from nrf.features.cache import read_stimuli

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
    from nrf.data.simulate import CATEGORIES, SimulatedBrain, SimulationParams

    if imageset not in CATEGORIES:
        raise VolumeError(f"image set {imageset!r}: choose 'test' or one of the simulator's {CATEGORIES}")
    if simulation is None:
        raise VolumeError(f"image set {imageset!r} needs the simulator's categories: only on the simulated dataset")
    brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
    chosen = test_ids[brain.images["category"][test_ids] == CATEGORIES.index(imageset)][:n]
    if len(chosen) < 2:
        raise VolumeError(f"only {len(chosen)} test images of category {imageset!r}")
    return chosen


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nrf-volume",
        description="Evaluate a trained NRF for a folder of images on an MNI152 grid at any resolution; "
                    "write a 4-D NIfTI (X, Y, Z, n_images) and a JSON sidecar.")
    p.add_argument("checkpoint", help="an NRF checkpoint (.pt) written by the train_encoder rule")
    p.add_argument("images", help="a folder of PNG/JPEG images (any size; centre-cropped and resized as NSD's)")
    p.add_argument("out", help="the NIfTI to write (.nii or .nii.gz); the sidecar is OUT.json")
    p.add_argument("--resolution", type=float, default=2.0, help="voxel size in mm (any positive number; "
                   "default 2)")
    p.add_argument("--mask", default="training", help="'training' (default: the training voxels' region, "
                   "dilated by one voxel), 'mni-brain' (nilearn's MNI152 brain mask) or a NIfTI mask in MNI space")
    p.add_argument("--prepared", help="the prepared subject file the model was trained on (default: the "
                   "checkpoint's record)")
    p.add_argument("--features", help="the features file the model was trained on, to read the extractor's "
                   "name (default: the checkpoint's record)")
    p.add_argument("--extractor", help="the extractor's name (default: read off the features file)")
    p.add_argument("--clip-weights", help="CLIP weights (a local file) for the clip_vitb16 extractor")
    p.add_argument("--stimulus-size", type=int, default=None, help="side in px the training stimuli had "
                   f"(default {NSD_STIMULUS_SIZE}, NSD's)")
    p.add_argument("--chunk-points", type=int, default=8192, help="grid points evaluated at a time "
                   "(bounds memory)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    options = {}
    if args.clip_weights:
        options = {"weights": args.clip_weights, "device": args.device}
    try:
        query_volume(args.checkpoint, args.images, args.out, resolution=args.resolution, mask=args.mask,
                     prepared=args.prepared, features=args.features, extractor=args.extractor,
                     extractor_options=options, stimulus_size=args.stimulus_size, chunk_points=args.chunk_points,
                     device=args.device)
    except VolumeError as error:
        print(f"nrf-volume: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
