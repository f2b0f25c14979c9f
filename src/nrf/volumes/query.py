"""Query a trained NRF anywhere: brain volumes in MNI space, at any resolution, for any image.

:func:`query_volume` evaluates an NRF checkpoint (``nrf.training.encoders.train_encoder``)
for a folder of images on an MNI152 grid of any voxel size and writes a 4-D
NIfTI (X, Y, Z, n_images) float32 whose sform and qform (code 4, MNI) are
that grid, plus a JSON sidecar naming the checkpoint, the extractor, the
images (with their sha256), the mask and the volume's own sha256, which
:func:`nrf.volumes.grid.read_volume` checks before a figure reads it. ``nrf-volume`` is its
command line.

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

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import nibabel as nib
import numpy as np
import torch

from nrf.atomic import atomic_output
from nrf.checks import CorruptFileError, file_sha256, open_hdf5
from nrf.data.prepared import load_prepared
from nrf.devices import resolve_device
from nrf.features.extractors import get_extractor
from nrf.training.encoders import load_encoder, read_checkpoint
from nrf.training.loop import forward_in_blocks
from nrf.volumes.grid import MNI_CODE, VolumeError, build_mask, mni_grid
from nrf.volumes.images import ImageSet, read_image_folder

logger = logging.getLogger(__name__)

NSD_STIMULUS_SIZE = 425


def load_nrf(checkpoint, device: str = "cpu"):
    """(NRF in eval mode, checkpoint dict); a checkpoint that is not an NRF is named."""
    path = Path(checkpoint)
    if not path.exists():
        raise VolumeError(f"{path}: no such checkpoint")
    try:
        ckpt = read_checkpoint(path)
    except CorruptFileError as error:  # a damaged or foreign file
        raise VolumeError(str(error)) from error
    if ckpt.get("kind") != "nrf":
        kind = ckpt.get("kind")
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
    with open_hdf5(path, what="features file") as f:
        return str(f.attrs["extractor"])


def _features_layers(ckpt: dict, features_path=None) -> tuple[int, int]:
    path = Path(features_path or ckpt.get("features", ""))
    if not path.is_file():
        raise VolumeError(f"the checkpoint's features file {str(path)!r} is not here; it records CLIP's layers "
                          "(--features)")
    with open_hdf5(path, what="features file") as f:
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

    dev = torch.device(resolve_device(device))
    feats = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=dev) for k, v in features.items()}
    with torch.no_grad():
        image_code = model.image_code(feats)

    @torch.no_grad()
    def predict(points: np.ndarray) -> np.ndarray:
        coord_code = model.coord_code(torch.as_tensor(np.asarray(points, dtype=np.float32), device=dev))
        return forward_in_blocks(model, image_code, coord_code, dev).numpy()

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



def write_sidecar(out_nifti, sidecar: dict) -> dict:
    """Write ``out_nifti`` + ``.json`` atomically: ``sidecar`` and the volume's own
    ``volume_sha256``, which :func:`nrf.volumes.grid.read_volume` checks. Returns what it wrote."""
    sidecar = {**sidecar, "volume_sha256": file_sha256(out_nifti)}
    with atomic_output(Path(str(out_nifti) + ".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1) + "\n")
    return sidecar


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
        "checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
        "subject": q.ckpt.get("subject"), "extractor": q.extractor,
        "stimulus_size": int(q.images.pixels.shape[1]),
        "images": [{"file": n, "sha256": h, "volume": i} for i, (n, h) in enumerate(zip(q.images.names,
                                                                                        q.images.sha256))],
        "mask": mask, "n_points": n_points, "resolution_mm": float(resolution),
        "shape": list(q.shape) + [n_img], "affine": q.affine.tolist(), "space": "MNI152 (xform code 4)",
        "outside_mask": 0.0,
    }
    sidecar = write_sidecar(out_nifti, sidecar)
    log.info("wrote %s", out_nifti)
    return sidecar


