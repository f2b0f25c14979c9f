"""The Natural Scenes Dataset's folder layout: the contract between stages.

Every dataset reaches the pipeline as a tree in NSD's own layout (the real one
downloaded from NSD's bucket, the default simulated into the same keys), so
everything downstream of the tree is one code path. This module only names
keys; readers and writers live with the stages that use them.

All functions return keys relative to the tree's root (a folder such as
``resources/simulated`` or ``resources/nsd``), with forward slashes, so the
same key is a local path and an S3 object name.
"""

from __future__ import annotations

import numpy as np

BUCKET_URL = "https://natural-scenes-dataset.s3.amazonaws.com"

# Sessions released per subject (subj01..subj08), 750 trials each.
NSD_SESSIONS = {
    "subj01": 40, "subj02": 40, "subj03": 32, "subj04": 30,
    "subj05": 40, "subj06": 32, "subj07": 40, "subj08": 30,
}
NSD_TRIALS_PER_SESSION = 750

# nsdgeneral voxel counts (brainmask > 0 & nsdgeneral > 0) in func1pt8mm.
NSD_NSDGENERAL_VOXELS = {"subj01": 15724, "subj02": 14278, "subj05": 13039, "subj07": 12682}
# Shared images shown within the first 30 sessions (the fewest any subject
# completed), so seen by all eight subjects: the authors' test set.
NSD_TEST_IMAGES_SEEN_BY_ALL = 907

# Integer label volumes on the func grid; 0 = unlabelled.
ROI_ATLASES = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
}

# Betas are stored as int16 multiplied by this factor.
BETA_SCALE = 300.0
# Marks an invalid voxel in the MNI-to-func1pt8 transform.
TRANSFORM_INVALID = 9999

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
# The images a run needs, read by range from STIMULI (real NSD only).
STIMULI_SUBSET = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.subset.hdf5"


def func_dir(subject: str) -> str:
    return f"nsddata/ppdata/{subject}/func1pt8mm"


def brainmask(subject: str) -> str:
    return f"{func_dir(subject)}/brainmask.nii.gz"


def roi(subject: str, atlas: str) -> str:
    """Key of an ROI volume: ``atlas`` is ``nsdgeneral`` or a key of ROI_ATLASES."""
    return f"{func_dir(subject)}/roi/{atlas}.nii.gz"


def ncsnr(subject: str) -> str:
    return f"nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz"


def mni_transform(subject: str) -> str:
    return f"nsddata/ppdata/{subject}/transforms/MNI-to-func1pt8.nii.gz"


def betas(subject: str, session: int, ext: str = "nii.gz") -> str:
    """Key of one session's betas: ``ext`` is ``nii.gz`` or ``hdf5`` (the twin)."""
    return (
        f"nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
        f"betas_session{session:02d}.{ext}"
    )


def mni_from_transform_index(ijk):
    """MNI millimetres from 0-based MNI 1 mm voxel indices (..., 3).

    The transform stores 1-based indices into the MNI152 1 mm grid; with
    0-based (i, j, k): x = 90 - i, y = j - 126, z = k - 72.
    """
    ijk = np.asarray(ijk, dtype=np.float64)
    return np.stack([90.0 - ijk[..., 0], ijk[..., 1] - 126.0, ijk[..., 2] - 72.0], axis=-1)


def transform_index_from_mni(xyz):
    """Inverse of :func:`mni_from_transform_index` (0-based, may be fractional)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([90.0 - xyz[..., 0], xyz[..., 1] + 126.0, xyz[..., 2] + 72.0], axis=-1)


def tree_root(expdesign_path) -> str:
    """The root of a tree, from the path of its experiment-design file."""
    path = str(expdesign_path).replace("\\", "/")
    if not path.endswith(EXPDESIGN):
        raise ValueError(f"{expdesign_path}: not an NSD experiment-design path (…/{EXPDESIGN})")
    return path[: -len(EXPDESIGN)].rstrip("/") or "."
