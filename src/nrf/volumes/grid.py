"""The MNI152 grid a volume is sampled on, and the mask of the points evaluated.

See :mod:`nrf.volumes` for the whole query.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.spatial import cKDTree

from nrf.checks import corrupt_file, file_sha256

logger = logging.getLogger(__name__)


MNI152_CORNER = np.array([-98.0, -134.0, -72.0])
MNI152_EXTENT = np.array([196.0, 232.0, 188.0])
MNI_CODE = 4  # NIfTI xform code "MNI_152"


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


def func_grid_affine(voxel_ijk, coords_mm) -> np.ndarray:
    """(4, 4) least-squares affine from func-grid indices to MNI mm (exact on the simulator,
    whose func-to-MNI map is affine; a linearisation of NSD's nonlinear one)."""
    X = np.column_stack([np.asarray(voxel_ijk, np.float64), np.ones(len(voxel_ijk))])
    A, *_ = np.linalg.lstsq(X, np.asarray(coords_mm, np.float64), rcond=None)
    affine = np.eye(4)
    affine[:3] = A.T
    return affine


def training_mask(coords_mm, shape, affine) -> np.ndarray:
    """(X, Y, Z) bool: grid points within one training voxel of a training coordinate.

    One training voxel is the median distance from a training coordinate to
    its nearest neighbour (NSD's 1.8 mm; the simulator's 4-4.6 mm).
    """
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
    from nilearn.datasets import load_mni152_brain_mask  # nilearn: heavy; only the 'brain' mask needs it

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


def read_volume(path) -> tuple[nib.Nifti1Image, dict]:
    """A volume written by :func:`nrf.volumes.query.query_volume` and its sidecar, the volume's
    sha256 checked against the sidecar's ``volume_sha256``.

    gzip's CRC is only checked by a read to the end of the file, and a figure
    reads a few images of it: a damaged volume would draw other numbers.
    Raises naming the file (:class:`nrf.checks.CorruptFileError`).
    """
    path = Path(path)
    side_path = Path(str(path) + ".json")
    if not path.is_file() or not side_path.is_file():
        raise FileNotFoundError(f"{path if not path.is_file() else side_path}: NRF volume or its sidecar not found")
    try:
        sidecar = json.loads(side_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt_file(side_path, "volume sidecar", f"{type(error).__name__}: {error}") from error
    expected = sidecar.get("volume_sha256") if isinstance(sidecar, dict) else None
    if expected is None:
        raise corrupt_file(side_path, "volume sidecar", "it holds no volume_sha256: written before volumes "
                                                        "carried one, or not by nrf.volumes.query")
    actual = file_sha256(path)
    if actual != expected:
        raise corrupt_file(path, "NRF volume", f"its sha256 is {actual[:16]}..., its sidecar says "
                                               f"{str(expected)[:16]}...: it changed after it was written")
    try:
        img = nib.load(path)
    except Exception as error:  # noqa: BLE001 — nibabel raises several kinds for a bad file
        raise corrupt_file(path, "NRF volume", f"{type(error).__name__}: {error}") from error
    return img, sidecar
