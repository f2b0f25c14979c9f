"""Figure 4's regions on the whole brain: an ROI is its label inside the brain mask.

The authors build each ROI from its whole-brain label volume,
``(label volume == label) & brainmask`` (haomiao8/NRF,
``nsd_data_processing/common.py``, ``build_roi_masks``), never intersected
with nsdgeneral; the ROI's responses and MNI coordinates are its voxels' in
C-order of the grid, one ROI after another (``getmaskedROI.py``,
``train/dataloader.py``). The prepared subject holds only brainmask ∩
nsdgeneral voxels (every model's voxels, MindEye2's order), so the probe's ROI
voxels outside nsdgeneral are prepared on their own, as the voxel set
``probe_rois`` (:func:`outside_voxels`), and the probe joins the two
(:class:`WholeBrainVoxels`).

Array functions: :func:`region_mask`, :func:`outside_voxels`,
:func:`region_positions`. Reading a tree: :func:`tree_outside_voxels`,
:func:`voxel_set`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nrf.data import nsd_layout, nsd_tree
from nrf.data.prepared import PreparedSubject

#: the voxel sets a subject's betas are prepared at (nrf.data.compact_betas.VOXEL_SETS)
NSDGENERAL, PROBE_ROIS = "nsdgeneral", "probe_rois"


def parse_rois(rois: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (atlas, labels)}`` from probes.rois' ``{name: {atlas, labels}}``
    (or pairs already); an unknown atlas or an empty label list is named."""
    out = {}
    for name, roi in rois.items():
        atlas, labels = (roi["atlas"], roi["labels"]) if isinstance(roi, dict) else roi
        if atlas not in nsd_layout.ROI_ATLASES:
            raise ValueError(f"probes.rois.{name}: atlas {atlas!r} is not one of {sorted(nsd_layout.ROI_ATLASES)}")
        labels = tuple(int(label) for label in labels)
        if not labels:
            raise ValueError(f"probes.rois.{name}: no labels")
        out[name] = (atlas, labels)
    return out


def region_mask(label_volume: np.ndarray, labels, brainmask: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool: voxels whose label is one of ``labels``, inside the brain mask.

    The authors' region; nsdgeneral plays no part in it.
    """
    label_volume, brainmask = np.asarray(label_volume), np.asarray(brainmask)
    if label_volume.shape != brainmask.shape or brainmask.ndim != 3:
        raise ValueError(f"label volume {label_volume.shape} and brainmask {brainmask.shape} "
                         f"must be one (X, Y, Z) grid")
    return np.isin(np.rint(label_volume), list(labels)) & (brainmask > 0)


def outside_voxels(brainmask: np.ndarray, nsdgeneral: np.ndarray, label_volumes: dict, rois: dict) -> np.ndarray:
    """(n, 3) int32 voxels, C-order of the grid: in some ROI's region but not in nsdgeneral.

    label_volumes : {atlas: (X, Y, Z) label volume} for every atlas ``rois`` names
    rois : {name: (atlas, labels)} (:func:`parse_rois`)
    """
    nsdgeneral = np.asarray(nsdgeneral)
    if nsdgeneral.shape != np.shape(brainmask):
        raise ValueError(f"nsdgeneral {nsdgeneral.shape} and brainmask {np.shape(brainmask)} must be one grid")
    wanted = np.zeros(nsdgeneral.shape, dtype=bool)
    for atlas, labels in parse_rois(rois).values():
        wanted |= region_mask(label_volumes[atlas], labels, brainmask)
    return np.stack(np.nonzero(wanted & ~(nsdgeneral > 0)), axis=1).astype(np.int32)


def tree_outside_voxels(root, subject: str, rois: dict) -> tuple[np.ndarray, tuple[int, int, int]]:
    """:func:`outside_voxels` of one subject of an NSD-layout tree, and its grid shape."""
    brainmask, _ = nsd_tree.load_volume(root, nsd_layout.brainmask(subject))
    grid_shape = tuple(int(n) for n in brainmask.shape)
    volumes = {}
    for key, name in [(nsd_layout.roi(subject, "nsdgeneral"), "nsdgeneral")] + [
            (nsd_layout.roi(subject, atlas), atlas) for atlas in sorted({a for a, _ in parse_rois(rois).values()})]:
        volumes[name], _ = nsd_tree.load_volume(root, key)
        nsd_tree.check_grid(volumes[name], grid_shape, f"{subject}: {key}")
    nsdgeneral = volumes.pop("nsdgeneral")
    return outside_voxels(brainmask, nsdgeneral, volumes, rois), grid_shape


def voxel_set(root, subject: str, name: str, rois: dict | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The voxels (C-order) and grid shape of voxel set ``name``: nsdgeneral, or probe_rois (needs ``rois``)."""
    if name == NSDGENERAL:
        return nsd_tree.subject_voxels(root, subject)
    if name == PROBE_ROIS:
        if not rois:
            raise ValueError(f"{subject}: the voxel set {PROBE_ROIS!r} needs the probe's ROIs (probes.rois)")
        return tree_outside_voxels(root, subject, rois)
    raise ValueError(f"voxel set must be {NSDGENERAL!r} or {PROBE_ROIS!r}, got {name!r}")


def region_positions(voxel_ijk: np.ndarray, grid_shape, atlas_labels: np.ndarray, labels) -> np.ndarray:
    """Positions (into ``voxel_ijk``) of a region's voxels in the authors' order:
    label by label as ``labels`` lists them, each label's voxels in C-order of the grid."""
    flat = np.ravel_multi_index(tuple(np.asarray(voxel_ijk, dtype=np.int64).T), tuple(grid_shape))
    atlas_labels = np.asarray(atlas_labels)
    out = []
    for label in labels:
        members = np.flatnonzero(atlas_labels == label)
        out.append(members[np.argsort(flat[members], kind="stable")])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class WholeBrainVoxels:
    """A subject's nsdgeneral voxels followed by its probe ROI voxels outside nsdgeneral.

    voxel_ijk, coords : (n_inside + n_outside, 3); rois : {atlas: (n,) labels};
    n_inside : the first n_inside rows are the prepared subject's, in its order.
    """

    voxel_ijk: np.ndarray
    coords: np.ndarray
    rois: dict[str, np.ndarray]
    grid_shape: tuple[int, int, int]
    n_inside: int

    @classmethod
    def join(cls, prepared: PreparedSubject, outside: PreparedSubject, *, source="") -> WholeBrainVoxels:
        """Join a prepared subject and its ``probe_rois`` preparation, checked to be
        the same subject, grid and images, and to share no voxel."""
        where = f"{source}: " if source else ""
        if outside.attrs.get("voxel_set") != PROBE_ROIS:
            raise ValueError(f"{where}not a preparation of the probe's ROI voxels (attrs voxel_set "
                             f"{outside.attrs.get('voxel_set')!r}, expected {PROBE_ROIS!r})")
        for key in ("subject", "grid_shape", "protocol", "sessions"):
            if prepared.attrs.get(key) != outside.attrs.get(key):
                raise ValueError(f"{where}its {key} {outside.attrs.get(key)!r} differs from the prepared "
                                 f"subject's {prepared.attrs.get(key)!r}: prepare both with the same settings")
        for name in ("train", "test"):
            mine, theirs = getattr(prepared, name), getattr(outside, name)
            if mine is not None and theirs is not None and not np.array_equal(mine.image_ids, theirs.image_ids):
                raise ValueError(f"{where}its {name} images differ from the prepared subject's")
        grid_shape = tuple(prepared.attrs["grid_shape"])
        ijk = np.concatenate([prepared.voxel_ijk, outside.voxel_ijk]).astype(np.int32)
        if len(np.unique(np.ravel_multi_index(tuple(ijk.T.astype(np.int64)), grid_shape))) != len(ijk):
            raise ValueError(f"{where}holds voxels of nsdgeneral: the two voxel sets must not overlap")
        return cls(voxel_ijk=ijk, coords=np.concatenate([prepared.coords, outside.coords]),
                   rois={a: np.concatenate([prepared.rois[a], outside.rois[a]]) for a in prepared.rois},
                   grid_shape=grid_shape, n_inside=prepared.n_voxels)

    def region(self, atlas: str, labels) -> np.ndarray:
        """Positions of the whole-brain region (``atlas`` label in ``labels``), authors' order."""
        if atlas not in self.rois:
            raise ValueError(f"ROI atlas {atlas!r} not in the prepared files (they have {sorted(self.rois)})")
        return region_positions(self.voxel_ijk, self.grid_shape, self.rois[atlas], labels)
