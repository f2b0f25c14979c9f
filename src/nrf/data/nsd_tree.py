"""Readers of an NSD-layout tree: a root folder holding NSD's keys.

The tree is either the real NSD (downloaded) or the simulated one; both are
read here, through the keys of :mod:`nrf.data.nsd_layout`, so everything
downstream is one code path. Functions that take ``root`` do file I/O; the
others (:func:`select_voxels`, :func:`mni_coordinates`, :func:`roi_labels_at`)
take arrays and return arrays.

Conventions:
    voxel_ijk : (n_voxels, 3) int32, 0-based (i, j, k) indices into the func
                grid's (X, Y, Z) axes, in C-order of the grid (np.nonzero
                order of brainmask > 0 & nsdgeneral > 0: MindEye2's order)
    betas     : (n_trials, n_voxels) int16, NSD's scale (beta x 300)
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from nrf.data import compact_betas, nsd_layout

BETAS_FORMATS = ("nifti", "compact")
# Trials of a NIfTI session read at once (one chunk of the (X, Y, Z, T) volume in memory).
NIFTI_CHUNK_TRIALS = 64


def subject_index(subject: str) -> int:
    """0-based row of ``subject`` (``subjNN``) in ``subjectim``."""
    if len(subject) != 6 or not subject.startswith("subj") or not subject[-2:].isdigit():
        raise ValueError(f"{subject!r}: expected a subject name like 'subj01'")
    index = int(subject[-2:]) - 1
    if not 0 <= index < 8:
        raise ValueError(f"{subject!r}: NSD has subjects subj01..subj08")
    return index


def _path(root, key: str) -> Path:
    return Path(root) / key


# ---------------------------------------------------------------- experiment design


def read_expdesign(root) -> dict[str, np.ndarray]:
    """Read ``nsd_expdesign.mat``.

    Returns
    -------
    dict with
        masterordering : (n_trials,) int64, 1-based index into a subject's image list
        subjectim      : (8, n_images) int64, 1-based 73k ids
        sharedix       : (n_shared,) int64, 1-based 73k ids of the shared images
    """
    path = _path(root, nsd_layout.EXPDESIGN)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: experiment design not found — is {root} an NSD-layout tree?")
    try:
        mat = scipy.io.loadmat(path, variable_names=["masterordering", "subjectim", "sharedix"])
    except Exception as err:  # scipy raises several kinds for a bad file
        raise ValueError(f"{path}: cannot read as a MATLAB file ({err})") from err
    missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in mat]
    if missing:
        raise ValueError(f"{path}: lacks {missing}")
    out = {
        "masterordering": np.asarray(mat["masterordering"]).reshape(-1).astype(np.int64),
        "subjectim": np.atleast_2d(np.asarray(mat["subjectim"])).astype(np.int64),
        "sharedix": np.asarray(mat["sharedix"]).reshape(-1).astype(np.int64),
    }
    if out["subjectim"].shape[0] != 8:
        raise ValueError(f"{path}: subjectim must be (8, n_images), got {out['subjectim'].shape}")
    n_images = out["subjectim"].shape[1]
    mo = out["masterordering"]
    if mo.size and (mo.min() < 1 or mo.max() > n_images):
        raise ValueError(
            f"{path}: masterordering must hold 1-based indices in 1..{n_images}, "
            f"got {mo.min()}..{mo.max()}"
        )
    if len(out["sharedix"]) > n_images:
        raise ValueError(f"{path}: {len(out['sharedix'])} shared images but only {n_images} per subject")
    return out


# ---------------------------------------------------------------- volumes


def load_volume(root, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI volume at ``root/key``.

    Returns ``data`` (its stored dtype, scaled only if the header says so) and
    ``affine`` (4, 4) float64.
    """
    path = _path(root, key)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found — is {root} an NSD-layout tree with this subject?")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises several kinds for a bad file
        raise ValueError(f"{path}: cannot read as NIfTI ({err})") from err
    return data, np.asarray(img.affine, dtype=np.float64)


def check_grid(data: np.ndarray, grid_shape, source: str) -> None:
    """Raise unless ``data``'s first three axes are ``grid_shape`` (the func grid)."""
    if tuple(data.shape[:3]) != tuple(grid_shape):
        raise ValueError(
            f"{source}: shape {tuple(data.shape)} is not on the func grid {tuple(grid_shape)} "
            f"of the brainmask — are both from func1pt8mm?"
        )


def select_voxels(brainmask: np.ndarray, nsdgeneral: np.ndarray) -> np.ndarray:
    """Voxels with brainmask > 0 and nsdgeneral > 0, in C-order of the grid.

    Parameters
    ----------
    brainmask, nsdgeneral : (X, Y, Z) arrays on the func grid (nsdgeneral is
        -1/0/1 in NSD; only > 0 counts)

    Returns
    -------
    voxel_ijk : (n_voxels, 3) int32, the np.nonzero order (MindEye2's voxel order)
    """
    brainmask = np.asarray(brainmask)
    nsdgeneral = np.asarray(nsdgeneral)
    if brainmask.ndim != 3 or brainmask.shape != nsdgeneral.shape:
        raise ValueError(
            f"brainmask {brainmask.shape} and nsdgeneral {nsdgeneral.shape} must be one (X, Y, Z) grid"
        )
    mask = (brainmask > 0) & (nsdgeneral > 0)
    return np.stack(np.nonzero(mask), axis=1).astype(np.int32)


def _at(volume: np.ndarray, voxel_ijk: np.ndarray) -> np.ndarray:
    """``volume[i, j, k, ...]`` for every row of ``voxel_ijk`` -> (n_voxels, ...)."""
    voxel_ijk = np.asarray(voxel_ijk)
    return volume[voxel_ijk[:, 0], voxel_ijk[:, 1], voxel_ijk[:, 2]]


def mni_coordinates(transform: np.ndarray, voxel_ijk: np.ndarray, *, source: str = "MNI transform") -> np.ndarray:
    """MNI millimetres of the selected voxels.

    Parameters
    ----------
    transform : (X, Y, Z, 3) the MNI-to-func1pt8 volume: 1-based (possibly
        fractional) MNI 1 mm voxel indices, 9999 = invalid
    voxel_ijk : (n_voxels, 3) int, func-grid indices
    source : names the subject/file in errors

    Returns
    -------
    coords : (n_voxels, 3) float32, MNI mm (x, y, z)
    """
    transform = np.asarray(transform)
    if transform.ndim != 4 or transform.shape[3] != 3:
        raise ValueError(f"{source}: the MNI transform must be (X, Y, Z, 3), got {transform.shape}")
    idx = _at(transform, voxel_ijk).astype(np.float64)  # (n, 3), 1-based
    invalid = np.any(idx == nsd_layout.TRANSFORM_INVALID, axis=1) | ~np.all(np.isfinite(idx), axis=1)
    n_bad = int(invalid.sum())
    if n_bad:
        raise ValueError(
            f"{source}: {n_bad:,} of {len(idx):,} selected voxels have no MNI coordinate "
            f"({nsd_layout.TRANSFORM_INVALID} in the transform) — is the transform from the same "
            f"subject and func1pt8mm grid as the masks?"
        )
    return nsd_layout.mni_from_transform_index(idx - 1.0).astype(np.float32)


def roi_labels_at(volume: np.ndarray, voxel_ijk: np.ndarray) -> np.ndarray:
    """Integer ROI labels (n_voxels,) int16 of an (X, Y, Z) label volume.

    Negative labels (NSD's -1 outside the brain) become 0 = unlabelled.
    """
    labels = np.rint(_at(np.asarray(volume), voxel_ijk)).astype(np.int64)
    labels[labels < 0] = 0
    return labels.astype(np.int16)


def roi_labels(root, subject: str, voxel_ijk: np.ndarray, grid_shape=None) -> dict[str, np.ndarray]:
    """Label of every voxel for every atlas of ``nsd_layout.ROI_ATLASES``.

    Returns ``{atlas: (n_voxels,) int16}`` with 0 = unlabelled (see the atlas's
    label names in ``nsd_layout.ROI_ATLASES``).
    """
    out = {}
    for atlas in nsd_layout.ROI_ATLASES:
        key = nsd_layout.roi(subject, atlas)
        volume, _ = load_volume(root, key)
        if grid_shape is not None:
            check_grid(volume, grid_shape, f"{subject}: {key}")
        if volume.ndim != 3:
            raise ValueError(f"{subject}: {key}: expected an (X, Y, Z) label volume, got {volume.shape}")
        out[atlas] = roi_labels_at(volume, voxel_ijk)
    return out


# ---------------------------------------------------------------- betas


def _betas_key(subject: str, session: int, betas_format: str, voxel_set: str = "nsdgeneral") -> str:
    if betas_format == "nifti":
        return nsd_layout.betas(subject, session)
    if betas_format == "compact":
        return compact_betas.compact_key(nsd_layout.betas(subject, session), voxel_set)
    raise ValueError(f"betas_format must be one of {BETAS_FORMATS}, got {betas_format!r}")


def betas_path(root, subject: str, session: int, betas_format: str, voxel_set: str = "nsdgeneral") -> Path:
    """Local path of one session's betas in the given format (compact: the file of ``voxel_set``)."""
    return _path(root, _betas_key(subject, session, betas_format, voxel_set))


def session_trial_count(root, subject: str, session: int, betas_format: str, voxel_set: str = "nsdgeneral") -> int:
    """Number of trials in one session, read from the file's header only."""
    path = betas_path(root, subject, session, betas_format, voxel_set)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {subject} session {session} betas not found")
    if betas_format == "nifti":
        shape = nib.load(path).shape
        if len(shape) != 4:
            raise ValueError(f"{path}: betas must be (X, Y, Z, n_trials), got {shape}")
        return int(shape[3])
    with h5py.File(path, "r") as f:
        return int(f["betas"].shape[0])


def _as_int16(data: np.ndarray, source) -> np.ndarray:
    if data.dtype == np.int16:
        return data
    info = np.iinfo(np.int16)
    ok = data.size == 0 or (
        data.min() >= info.min and data.max() <= info.max
        and (np.issubdtype(data.dtype, np.integer) or np.all(np.rint(data) == data))
    )
    if not ok:
        raise ValueError(
            f"{source}: betas must be int16 at NSD's scale (beta x {nsd_layout.BETA_SCALE:g}), "
            f"got {data.dtype} values that are not"
        )
    return data.astype(np.int16)


def _nifti_betas_at(path: Path, voxel_ijk: np.ndarray) -> np.ndarray:
    """(n_trials, n_voxels) int16 from an (X, Y, Z, T) NIfTI, NIFTI_CHUNK_TRIALS trials at a time.

    The last axis varies slowest on disk, so the chunks are consecutive reads
    of the (gzipped) file kept open: memory stays at one chunk of the volume
    instead of the whole session (~1 GB for real NSD).
    """
    try:
        img = nib.load(path, keep_file_open=True)
        shape = img.shape
    except Exception as err:  # nibabel raises several kinds for a bad file
        raise ValueError(f"{path}: cannot read as NIfTI ({err})") from err
    if len(shape) != 4:
        raise ValueError(f"{path}: betas must be (X, Y, Z, n_trials), got {shape}")
    if len(voxel_ijk) and np.any(voxel_ijk.max(axis=0) >= np.asarray(shape[:3])):
        raise ValueError(
            f"{path}: grid {shape[:3]} is smaller than the selected voxels' indices — "
            f"are the masks from the same subject's func1pt8mm?"
        )
    n_trials, chunk = shape[3], NIFTI_CHUNK_TRIALS
    out = np.empty((n_trials, len(voxel_ijk)), dtype=np.int16)
    try:
        for t0 in range(0, n_trials, chunk):
            block = np.asanyarray(img.dataobj[..., t0 : t0 + chunk])  # (X, Y, Z, c)
            out[t0 : t0 + block.shape[3]] = _as_int16(_at(block, voxel_ijk).T, path)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: cannot read the betas ({err})") from err
    finally:
        del img
    return out


def session_betas(root, subject: str, session: int, voxel_ijk: np.ndarray, betas_format: str = "nifti",
                  voxel_set: str = "nsdgeneral") -> np.ndarray:
    """One session's betas at the selected voxels.

    Parameters
    ----------
    session : 1-based session number
    voxel_ijk : (n_voxels, 3) int, func-grid indices in C-order
    betas_format : ``"nifti"`` reads ``betas_sessionNN.nii.gz`` (X, Y, Z, T);
        ``"compact"`` reads ``betas_sessionNN.{voxel_set}.hdf5``, whose
        voxel_ijk must equal ``voxel_ijk`` (a file made from other masks or
        other probe ROIs is refused, naming it)
    voxel_set : the compact file's voxel set (nrf.data.compact_betas.VOXEL_SETS)

    Returns
    -------
    betas : (n_trials, n_voxels) int16, NSD's scale (beta x 300)
    """
    voxel_ijk = np.asarray(voxel_ijk, dtype=np.int32)
    path = betas_path(root, subject, session, betas_format, voxel_set)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {subject} session {session} betas not found")
    if betas_format == "nifti":
        return _nifti_betas_at(path, voxel_ijk)

    betas, stored_ijk = compact_betas.read_compact_betas(path)
    stored_ijk = np.asarray(stored_ijk)
    if stored_ijk.shape != voxel_ijk.shape or not np.array_equal(stored_ijk, voxel_ijk):
        raise ValueError(
            f"{path}: its {len(stored_ijk):,} voxels differ from the {len(voxel_ijk):,} selected by "
            f"{compact_betas.VOXEL_SETS[voxel_set]} — it was made from other masks or settings; download "
            f"the session again: snakemake --cores 1 --force {path}"
        )
    if betas.ndim != 2 or betas.shape[1] != len(voxel_ijk):
        raise ValueError(f"{path}: betas must be (n_trials, {len(voxel_ijk)}), got {betas.shape}")
    return _as_int16(betas, path)


def subject_voxels(root, subject: str) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The subject's voxels, brainmask > 0 & nsdgeneral > 0, from the tree.

    Returns ``voxel_ijk`` (n_voxels, 3) int32 in C-order of the func grid and
    ``grid_shape`` (X, Y, Z).
    """
    brainmask, _ = load_volume(root, nsd_layout.brainmask(subject))
    if brainmask.ndim != 3:
        raise ValueError(f"{subject}: {nsd_layout.brainmask(subject)} must be (X, Y, Z), got {brainmask.shape}")
    grid_shape = tuple(int(n) for n in brainmask.shape)
    nsdgeneral, _ = load_volume(root, nsd_layout.roi(subject, "nsdgeneral"))
    check_grid(nsdgeneral, grid_shape, f"{subject}: {nsd_layout.roi(subject, 'nsdgeneral')}")
    return select_voxels(brainmask, nsdgeneral), grid_shape


def trial_images(expdesign: dict, subject: str, n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """The image shown on each of a subject's first ``n_trials`` trials.

    Trial t shows 0-based 73k id ``subjectim[s, masterordering[t] - 1] - 1``
    with s = int(subject[-2:]) - 1; it is a shared (test) image when
    masterordering[t] <= n_shared = len(sharedix).

    Returns
    -------
    image_ids : (n_trials,) int64, 0-based 73k ids
    is_shared : (n_trials,) bool
    """
    mo = expdesign["masterordering"]
    if n_trials > len(mo):
        raise ValueError(
            f"{subject}: the sessions hold {n_trials:,} trials but masterordering lists only "
            f"{len(mo):,} — are the sessions from this experiment design?"
        )
    mo = mo[:n_trials]
    image_ids = expdesign["subjectim"][subject_index(subject), mo - 1] - 1
    is_shared = mo <= len(expdesign["sharedix"])
    return image_ids.astype(np.int64), is_shared


def images_seen(root, sessions: dict, trials_per_session: int) -> np.ndarray:
    """Sorted unique 0-based 73k ids shown to the subjects in their first sessions.

    sessions : {subject: number of sessions read}; a subject's trials are the
        first ``n_sessions x trials_per_session`` of ``masterordering``
    """
    design = read_expdesign(root)
    ids = [trial_images(design, s, int(n) * int(trials_per_session))[0] for s, n in sessions.items()]
    return np.unique(np.concatenate(ids)).astype(np.int64) if ids else np.zeros(0, np.int64)
