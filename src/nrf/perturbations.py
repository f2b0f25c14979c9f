"""Perturbation probes of NRF's anatomical awareness (paper §5.4, Figure 4).

Array functions (pure, explicit seeds):

    shuffle_global       permute the coordinate<->response pairing over all voxels
    shuffle_within_rois  permute it only among voxels of the same ROI group
    roi_groups           one group id per voxel from several ROI atlases
    roi_mask             the voxels of some labels of one atlas (EBA, V1, ...)
    shift_inside         translate a voxel set by a fixed distance so that it
                         stays inside the subject's own voxel hull

A shuffle is returned as a permutation ``perm`` (n_voxels,): the model is
trained and scored with ``coords[perm]`` against the unchanged responses, so
voxel v's responses are paired with voxel perm[v]'s coordinate.

The cells that train models under these perturbations are in
nrf.experiments.probes; this module needs numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

INTACT = "coordinates intact"
GLOBAL = "shuffled globally"
WITHIN_ROI = "shuffled within ROI"
ALIGNED = "aligned"
SHIFTED = "shifted"
#: columns of the probe CSVs (nrf.experiments.probes)
ROWS = ("panel", "subject", "condition", "n_train", "draw", "pearson", "mse", "steps", "n_voxels")


# -- array functions -------------------------------------------------------------
def shuffle_global(n_voxels: int, seed) -> np.ndarray:
    """A permutation of all voxels, (n_voxels,) int64: voxel v takes coordinate perm[v]."""
    return np.random.default_rng(seed).permutation(n_voxels)


def shuffle_within_rois(groups: np.ndarray, seed) -> np.ndarray:
    """A permutation that moves each voxel only to a voxel of its own group.

    groups : (n_voxels,) int, e.g. from :func:`roi_groups` (0 = unlabelled:
             those voxels are shuffled among themselves)
    Returns perm (n_voxels,) int64 with groups[perm] == groups.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    perm = np.arange(len(groups))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        perm[members] = rng.permutation(members)
    return perm


def roi_groups(rois: dict[str, np.ndarray], atlases) -> np.ndarray:
    """One group per voxel: the first of ``atlases`` that labels it decides.

    rois    : {atlas: (n_voxels,) int labels, 0 = unlabelled} (prepared file's roi/)
    atlases : atlas names in priority order (the floc atlases overlap a little)
    Returns (n_voxels,) int64: 0 for voxels no atlas labels, else
    1 + index of (atlas, label) in a fixed enumeration.
    """
    missing = [a for a in atlases if a not in rois]
    if missing:
        raise ValueError(f"ROI atlases {missing} not in the prepared file (it has {sorted(rois)})")
    n = len(next(iter(rois.values())))
    groups = np.zeros(n, dtype=np.int64)
    next_id = 1
    for atlas in atlases:
        labels = np.asarray(rois[atlas])
        for label in np.unique(labels[labels > 0]):
            take = (labels == label) & (groups == 0)
            groups[take] = next_id
            next_id += 1
    return groups


def roi_mask(rois: dict[str, np.ndarray], atlas: str, labels) -> np.ndarray:
    """(n_voxels,) bool: voxels whose ``atlas`` label is one of ``labels``."""
    if atlas not in rois:
        raise ValueError(f"ROI atlas {atlas!r} not in the prepared file (it has {sorted(rois)})")
    return np.isin(np.asarray(rois[atlas]), list(labels))


#: tolerance (mm) of the hull test: points on the hull's faces count as inside
HULL_TOLERANCE_MM = 1e-4


def _halfspaces(hull_points: np.ndarray) -> np.ndarray:
    """(n_faces, 4) [normal, offset] of the convex hull: inside means normal·p + offset <= 0."""
    return ConvexHull(np.asarray(hull_points, dtype=np.float64)).equations


def _inside(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return (np.asarray(points, np.float64) @ faces[:, :3].T + faces[:, 3] <= HULL_TOLERANCE_MM).all(axis=1)


def inside_hull(points: np.ndarray, hull_points: np.ndarray) -> np.ndarray:
    """(n,) bool: whether each point (n, 3) lies inside the convex hull of ``hull_points`` (m, 3)."""
    return _inside(points, _halfspaces(hull_points))


def shift_inside(
    coords: np.ndarray, brain_coords: np.ndarray, shift_mm: float, direction, seed, max_tries: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Translate a voxel set by ``shift_mm`` so that it stays inside the subject's brain.

    coords       : (n, 3) MNI mm of the voxels to move (an ROI)
    brain_coords : (m, 3) MNI mm of all the subject's voxels; "inside" means
                   inside their convex hull
    direction    : (3,) a fixed direction (it must keep every voxel inside),
                   or "random": seeded random unit directions are tried in
                   turn and the first that keeps every voxel inside is used
    Returns (shifted (n, 3) float32, the shift vector (3,) in mm). Raises if
    no direction keeps the set inside.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if shift_mm <= 0:
        raise ValueError(f"shift_mm must be positive, got {shift_mm}")
    faces = _halfspaces(brain_coords)
    if isinstance(direction, str):
        if direction != "random":
            raise ValueError(f"shift direction must be 'random' or three numbers, got {direction!r}")
        rng = np.random.default_rng(seed)
        candidates = rng.normal(size=(max_tries, 3))
    else:
        candidates = np.asarray(direction, dtype=np.float64).reshape(1, 3)
    for d in candidates:
        norm = np.linalg.norm(d)
        if norm == 0:
            raise ValueError("shift direction must not be (0, 0, 0)")
        vector = shift_mm * d / norm
        if _inside(coords + vector, faces).all():
            return (coords + vector).astype(np.float32), vector
    raise ValueError(
        f"no shift of {shift_mm} mm along "
        f"{'any of %d random directions' % len(candidates) if isinstance(direction, str) else list(direction)} "
        f"keeps all {len(coords)} voxels inside the subject's voxel hull: lower probes.shift_mm"
    )
