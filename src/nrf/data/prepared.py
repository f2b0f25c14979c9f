"""The prepared subject: one HDF5 file per subject, the input of every model.

Written by :func:`nrf.data.prepare.prepare_subject` through
:func:`write_prepared`; read with :func:`load_prepared`. This module is where
the file's keys are documented (docs/CONTRACTS.md, "Prepared subject").

Keys (n_voxels = brainmask > 0 & nsdgeneral > 0 on the func grid):
    coords              : (n_voxels, 3) float32, MNI mm (x, y, z)
    voxel_ijk           : (n_voxels, 3) int32, func-grid (i, j, k), C-order
                          of the grid (MindEye2's voxel order)
    ncsnr               : (n_voxels,) float32, NSD's noise-ceiling SNR of
                          each voxel (from the tree's ncsnr.nii.gz)
    roi/{atlas}         : (n_voxels,) int16 for each atlas in
                          nsd_layout.ROI_ATLASES; 0 = unlabelled, other
                          values name ROIs as in nsd_layout.ROI_ATLASES
    {split}/responses   : (n_images, n_voxels) float32, betas / 300,
                          z-scored per voxel within each session, averaged
                          over each image's repeats
    {split}/image_ids   : (n_images,) int64, 0-based NSD 73k ids, sorted
                          ascending; row r of responses is image_ids[r]
    for split in train, val, test.
        train : images with masterordering > n_shared (not shared)
        test  : shared images the subject saw; with test_images
                "seen_by_all" (the default, the authors' rule) only those
                shown within the first ``test_sessions`` sessions, i.e. seen
                by every subject (907 on NSD); the other shared images are
                dropped, as the authors drop them
        val   : protocol "paper": the test set itself (``val`` is an HDF5 hard
                link to ``test``; attrs val_is_test = True), as the authors
                stopped early on the test images. Protocol "clean": a seeded
                fraction of the training images, removed from train.
attrs:
    subject     : str, e.g. "subj01"
    protocol    : str, "paper" or "clean"
    grid_shape  : (3,) int32, the func grid (X, Y, Z)
    sessions    : (n_sessions,) int32, the 1-based sessions used
    val_is_test : bool
    test_images : str, the test-image rule (seen_by_all | seen_by_subject)
    test_sessions : int, seen_by_all: the sessions every NSD subject
                  completed (shared images shown in them are the test set)
    seed        : int, the validation split's seed (protocol clean only)
    val_fraction: float, the fraction of training images held out (clean only)
    voxel_set, probe_rois : only in the companion file
                  ``{subject}.probe_rois.hdf5``: "probe_rois" and the JSON of
                  probes.rois. That file has the same keys at Figure 4's ROI
                  voxels outside nsdgeneral (nrf.data.roi_voxels; possibly none)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nrf.atomic import atomic_output
from nrf.checks import add_dataset, new_hdf5, open_hdf5, require_finite
from nrf.data import nsd_layout

SPLITS = ("train", "val", "test")
PROTOCOLS = ("paper", "clean")


@dataclass
class Split:
    """One split: ``responses`` (n_images, n_voxels) float32, ``image_ids`` (n_images,) int64."""

    responses: np.ndarray
    image_ids: np.ndarray

    @property
    def n_images(self) -> int:
        return len(self.image_ids)


@dataclass
class PreparedSubject:
    """A prepared subject in memory; splits not loaded are None.

    coords    : (n_voxels, 3) float32, MNI mm
    voxel_ijk : (n_voxels, 3) int32
    rois      : {atlas: (n_voxels,) int16}
    ncsnr     : (n_voxels,) float32, noise-ceiling SNR per voxel
    train, val, test : Split or None
    attrs     : subject, protocol, grid_shape (tuple), sessions (list), val_is_test, ...
    """

    coords: np.ndarray
    voxel_ijk: np.ndarray
    rois: dict[str, np.ndarray]
    ncsnr: np.ndarray
    train: Split | None
    val: Split | None
    test: Split | None
    attrs: dict = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return len(self.coords)

    @property
    def subject(self) -> str:
        return self.attrs["subject"]

    @property
    def protocol(self) -> str:
        return self.attrs["protocol"]

    @property
    def val_is_test(self) -> bool:
        return bool(self.attrs["val_is_test"])

    def split(self, name: str) -> Split:
        """The split ``name``; raises if it was not loaded."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{self.attrs.get('subject', '?')}: split {name!r} was not loaded")
        return value


def _check_split(name: str, split: Split, n_voxels: int) -> None:
    r, ids = split.responses, split.image_ids
    if r.ndim != 2 or r.shape[1] != n_voxels or r.shape[0] != len(ids) or ids.ndim != 1:
        raise ValueError(
            f"split {name}: responses must be (n_images, {n_voxels}) with n_images = "
            f"len(image_ids); got {r.shape} and {ids.shape}"
        )
    if len(ids) > 1 and np.any(np.diff(ids) <= 0):
        raise ValueError(f"split {name}: image_ids must be sorted ascending and unique")


def write_prepared(path, prepared: PreparedSubject) -> None:
    """Write a prepared subject atomically (nrf.atomic.atomic_output).

    With ``attrs["val_is_test"]`` the ``val`` split is written as a hard link
    to ``test`` (``prepared.val`` is ignored).
    """
    path = Path(path)
    attrs = prepared.attrs
    val_is_test = bool(attrs["val_is_test"])
    coords = np.asarray(prepared.coords, dtype=np.float32)
    voxel_ijk = np.asarray(prepared.voxel_ijk, dtype=np.int32)
    n_voxels = len(coords)
    if coords.shape != (n_voxels, 3) or voxel_ijk.shape != (n_voxels, 3):
        raise ValueError(f"coords {coords.shape} and voxel_ijk {voxel_ijk.shape} must both be (n_voxels, 3)")
    ncsnr = np.asarray(prepared.ncsnr, dtype=np.float32)
    if ncsnr.shape != (n_voxels,):
        raise ValueError(f"ncsnr must be ({n_voxels},), got {ncsnr.shape}")
    missing = [a for a in nsd_layout.ROI_ATLASES if a not in prepared.rois]
    if missing:
        raise ValueError(f"rois lacks atlases {missing}")
    if attrs["protocol"] not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {attrs['protocol']!r}")
    if not val_is_test and prepared.val is None:
        raise ValueError("val is required unless val_is_test")
    splits = {"train": prepared.train, "test": prepared.test}
    if not val_is_test:
        splits = {"train": prepared.train, "val": prepared.val, "test": prepared.test}
    for name, split in splits.items():
        _check_split(name, split, n_voxels)
    require_finite(coords, name="coords", source=f"{path} (before writing)")
    for name, split in splits.items():
        require_finite(split.responses, name=f"{name}/responses", source=f"{path} (before writing)")

    with atomic_output(path) as tmp, new_hdf5(tmp) as f:
        add_dataset(f, "coords", coords)
        add_dataset(f, "voxel_ijk", voxel_ijk)
        add_dataset(f, "ncsnr", ncsnr)
        g = f.create_group("roi")
        for atlas in nsd_layout.ROI_ATLASES:
            labels = np.asarray(prepared.rois[atlas])
            if labels.shape != (n_voxels,):
                raise ValueError(f"roi/{atlas}: must be ({n_voxels},), got {labels.shape}")
            add_dataset(g, atlas, labels.astype(np.int16))
        for name, split in splits.items():
            g = f.create_group(name)
            add_dataset(g, "responses", np.asarray(split.responses, dtype=np.float32))
            add_dataset(g, "image_ids", np.asarray(split.image_ids, dtype=np.int64))
        if val_is_test:
            f["val"] = f["test"]  # hard link: the same data under both names
        f.attrs["subject"] = attrs["subject"]
        f.attrs["protocol"] = attrs["protocol"]
        f.attrs["grid_shape"] = np.asarray(attrs["grid_shape"], dtype=np.int32)
        f.attrs["sessions"] = np.asarray(attrs["sessions"], dtype=np.int32)
        f.attrs["val_is_test"] = val_is_test
        for key in ("test_images", "test_sessions", "voxel_set", "probe_rois"):
            if attrs.get(key) is not None:
                f.attrs[key] = attrs[key]
        if attrs.get("seed") is not None:
            f.attrs["seed"] = int(attrs["seed"])
        if attrs.get("val_fraction") is not None:
            f.attrs["val_fraction"] = float(attrs["val_fraction"])


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def load_prepared(path, splits=SPLITS) -> PreparedSubject:
    """Read a prepared subject; only the splits named in ``splits`` are loaded.

    With val_is_test, loading both val and test gives one shared Split object.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown splits {unknown}; choose from {SPLITS}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prepared subject not found — run the prepare rule first")
    with open_hdf5(path, what="prepared subject") as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        attrs["grid_shape"] = tuple(int(x) for x in np.atleast_1d(attrs["grid_shape"]))
        attrs["sessions"] = [int(x) for x in np.atleast_1d(attrs["sessions"])]
        attrs["val_is_test"] = bool(attrs["val_is_test"])
        loaded: dict[str, Split | None] = {s: None for s in SPLITS}
        for name in SPLITS:
            if name not in splits:
                continue
            if name == "val" and attrs["val_is_test"] and loaded["test"] is not None:
                loaded["val"] = loaded["test"]
                continue
            g = f[name]
            responses = g["responses"][()].astype(np.float32, copy=False)
            require_finite(responses, name=f"{name}/responses", source=path)
            loaded[name] = Split(responses=responses, image_ids=g["image_ids"][()].astype(np.int64, copy=False))
        if attrs["val_is_test"] and loaded["val"] is not None and "test" in splits:
            loaded["test"] = loaded["val"]
        coords = require_finite(f["coords"][()].astype(np.float32, copy=False), name="coords", source=path)
        return PreparedSubject(
            coords=coords,
            voxel_ijk=f["voxel_ijk"][()].astype(np.int32, copy=False),
            rois={atlas: f[f"roi/{atlas}"][()] for atlas in f["roi"]},
            ncsnr=f["ncsnr"][()],
            train=loaded["train"],
            val=loaded["val"],
            test=loaded["test"],
            attrs=attrs,
        )
