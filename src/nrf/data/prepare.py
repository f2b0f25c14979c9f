"""Preparation of one subject: NSD betas -> per-image responses at ROI voxels.

Steps (DESIGN.md §2): divide the int16 betas by 300; z-score every voxel
within each session (population std + 1e-6); average the repeats of each
image; keep brainmask ∩ nsdgeneral voxels in C-order of the func grid; attach
each voxel's MNI coordinate and ROI labels; split train (masterordering >
n_shared) / test (the shared images the subject saw), and a validation set.

The same steps prepare a second voxel set, ``probe_rois``: Figure 4's ROI
voxels outside nsdgeneral (nrf.data.roi_voxels), written to a file of their
own so that the prepared subject every model reads never changes with them.

Two protocols:
    paper : z-score statistics over ALL trials of a session; val = test (the
            authors stopped early on the test images).
    clean : z-score statistics over the session's TRAINING-image trials only,
            so test images never inform preprocessing; val = a seeded fraction
            of the training images, removed from train.

The math functions take arrays and return arrays, vectorised over voxels;
:func:`prepare_subject` does the I/O, one session at a time, so that real NSD
(30,000 trials x ~15,000 voxels) never sits in memory at once: only the
per-image sums (n_images, n_voxels) float32 and one session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nrf.data import nsd_layout, nsd_tree, roi_voxels
from nrf.data.prepared import PROTOCOLS, PreparedSubject, Split, write_prepared
from nrf.runlog import as_logfn

ZSCORE_EPS = 1e-6
#: the test-image rules (config key ``test_images``)
TEST_IMAGE_RULES = ("seen_by_all", "seen_by_subject")


# ---------------------------------------------------------------- math


def scale_betas(betas: np.ndarray) -> np.ndarray:
    """NSD int16 betas (n_trials, n_voxels) -> float32 betas (divided by 300)."""
    return np.asarray(betas, dtype=np.float32) / np.float32(nsd_layout.BETA_SCALE)


def zscore_session(
    responses: np.ndarray, stats_trials: np.ndarray | None = None, eps: float = ZSCORE_EPS
) -> np.ndarray:
    """Z-score every voxel of one session: (x - mean) / (std + eps).

    Parameters
    ----------
    responses : (n_trials, n_voxels) float
    stats_trials : (n_trials,) bool or None. The trials whose mean and
        population std (ddof=0) are used; None = all trials (protocol paper).
        All trials are transformed with these statistics.

    Returns
    -------
    (n_trials, n_voxels) float32
    """
    x = np.asarray(responses, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"responses must be (n_trials, n_voxels), got {x.shape}")
    ref = x if stats_trials is None else x[np.asarray(stats_trials, dtype=bool)]
    if len(ref) == 0:
        raise ValueError("no trials to compute the z-score statistics from")
    mean = ref.mean(axis=0, dtype=np.float64)
    std = ref.std(axis=0, dtype=np.float64)  # population std, ddof=0
    out = x - mean.astype(np.float32)
    out /= (std + eps).astype(np.float32)
    return out


def image_rows(trial_image_ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Row of each trial's image in the (not necessarily sorted) list ``image_ids``."""
    order = np.argsort(image_ids, kind="stable")
    pos = np.searchsorted(image_ids[order], trial_image_ids)
    pos = np.minimum(pos, len(order) - 1)
    if len(order) == 0 or np.any(image_ids[order][pos] != trial_image_ids):
        raise ValueError("some trials show images outside the list")
    return order[pos]


def accumulate_by_image(sums: np.ndarray, counts: np.ndarray, rows: np.ndarray, responses: np.ndarray) -> None:
    """Add each trial's response to its image's row, in place.

    sums : (n_images, n_voxels) float32; counts : (n_images,) int64;
    rows : (n_trials,) int, the image row of each trial;
    responses : (n_trials, n_voxels).
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        return
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    uniq = sorted_rows[starts]
    sums[uniq] += np.add.reduceat(responses[order], starts, axis=0)
    counts[uniq] += np.diff(np.r_[starts, len(rows)])


def average_by_image(responses: np.ndarray, trial_image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean response of each image over its repeats.

    Returns ``image_ids`` (n_images,) int64 sorted and ``means`` (n_images, n_voxels) float32.
    """
    image_ids = np.unique(trial_image_ids)
    sums = np.zeros((len(image_ids), responses.shape[1]), dtype=np.float32)
    counts = np.zeros(len(image_ids), dtype=np.int64)
    accumulate_by_image(sums, counts, image_rows(trial_image_ids, image_ids), responses)
    return image_ids, sums / counts[:, None].astype(np.float32)


def split_images(
    trial_image_ids: np.ndarray,
    is_shared: np.ndarray,
    *,
    protocol: str,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Image ids (sorted, int64) of each split: train, val, test.

    test = the shared images seen; train = the others. protocol paper: val =
    test. protocol clean: val = round(val_fraction * n_train) training images
    (at least one when val_fraction > 0 and there are two or more) drawn with
    ``numpy.random.default_rng(seed)``, removed from train.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    test = np.unique(trial_image_ids[is_shared])
    train = np.unique(trial_image_ids[~is_shared])
    both = np.intersect1d(train, test)
    if len(both):
        raise ValueError(
            f"{len(both):,} images appear both as shared and as non-shared trials — "
            f"masterordering and subjectim disagree"
        )
    if protocol == "paper":
        return {"train": train, "val": test, "test": test}
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(train)))
    if val_fraction > 0 and n_val == 0 and len(train) >= 2:
        n_val = 1
    rng = np.random.default_rng(seed)
    pick = np.zeros(len(train), dtype=bool)
    pick[rng.choice(len(train), size=n_val, replace=False)] = True
    return {"train": train[~pick], "val": train[pick], "test": test}


# ---------------------------------------------------------------- the three steps


@dataclass
class VoxelTable:
    """The voxels a subject's responses are kept at (step 1).

    voxel_ijk : (n_voxels, 3) int32, brainmask ∩ nsdgeneral (or the voxel set
        ``voxel_set``) in C-order of the grid
    grid_shape : (X, Y, Z)
    coords : (n_voxels, 3) float32, MNI mm
    rois : {atlas: (n_voxels,) int16}
    ncsnr : (n_voxels,) float32
    voxel_set : "nsdgeneral" or "probe_rois" (nrf.data.roi_voxels)
    """

    voxel_ijk: np.ndarray
    grid_shape: tuple[int, int, int]
    coords: np.ndarray
    rois: dict[str, np.ndarray]
    ncsnr: np.ndarray
    voxel_set: str = roi_voxels.NSDGENERAL

    @property
    def n_voxels(self) -> int:
        return len(self.voxel_ijk)


@dataclass
class TrialPlan:
    """Which trials feed which image row (step 2), known before any betas are read.

    offsets, counts : first trial (0-based, into masterordering) and trial
        count of each requested session
    trial_ids : (n_total,) int64, the 73k id shown on each trial
    trial_shared : (n_total,) bool, a shared-image trial
    splits : {"train", "val", "test"}: sorted image ids
    parts : the splits stored as rows, in order (train | [val |] test)
    row_ids : (n_rows,) int64, the image of each row of the accumulators
    """

    offsets: dict[int, int]
    counts: dict[int, int]
    trial_ids: np.ndarray
    trial_shared: np.ndarray
    splits: dict[str, np.ndarray]
    parts: list[str]
    row_ids: np.ndarray

    @property
    def bounds(self) -> np.ndarray:
        return np.cumsum([0] + [len(self.splits[p]) for p in self.parts])


def voxel_table(root, subject: str, *, expected_voxels: int | None = None, voxel_set: str = roi_voxels.NSDGENERAL,
                probe_rois: dict | None = None, log=None) -> VoxelTable:
    """Step 1: voxel selection, MNI coordinates, ROI labels and ncsnr of one subject.

    voxel_set : "nsdgeneral" (every model's voxels) or "probe_rois" (the ROI
        voxels of ``probe_rois`` outside nsdgeneral; there may be none)
    """
    log = as_logfn(log)
    voxel_ijk, grid_shape = roi_voxels.voxel_set(root, subject, voxel_set, probe_rois)
    n_voxels = len(voxel_ijk)
    if voxel_set == roi_voxels.NSDGENERAL:
        if expected_voxels is not None and n_voxels != int(expected_voxels):
            raise ValueError(
                f"{subject}: {n_voxels:,} voxels in nsdgeneral, expected {int(expected_voxels):,} — "
                f"is the mask from func1pt8mm?"
            )
        if n_voxels == 0:
            raise ValueError(f"{subject}: no voxel has brainmask > 0 and nsdgeneral > 0")
        log(f"{subject}: {n_voxels:,} voxels in brainmask ∩ nsdgeneral on grid {grid_shape}")
    else:
        log(f"{subject}: {n_voxels:,} voxels of the probe's ROIs {sorted(probe_rois)} outside nsdgeneral "
            f"(in the brain mask) on grid {grid_shape}")

    key = nsd_layout.mni_transform(subject)
    transform, _ = nsd_tree.load_volume(root, key)
    nsd_tree.check_grid(transform, grid_shape, f"{subject}: {key}")
    coords = nsd_tree.mni_coordinates(transform, voxel_ijk, source=f"{subject}: {key}")
    del transform
    rois = nsd_tree.roi_labels(root, subject, voxel_ijk, grid_shape)
    key = nsd_layout.ncsnr(subject)
    ncsnr_volume, _ = nsd_tree.load_volume(root, key)
    nsd_tree.check_grid(ncsnr_volume, grid_shape, f"{subject}: {key}")
    ncsnr = ncsnr_volume[tuple(voxel_ijk.T)].astype(np.float32)
    return VoxelTable(voxel_ijk, grid_shape, coords, rois, ncsnr, voxel_set)


def trial_plan(
    root,
    subject: str,
    sessions,
    *,
    protocol: str,
    val_fraction: float = 0.1,
    seed: int = 0,
    betas_format: str = "nifti",
    test_images: str = "seen_by_subject",
    test_sessions: int | None = None,
    voxel_set: str = roi_voxels.NSDGENERAL,
    log=None,
) -> TrialPlan:
    """Step 2: the trials of the requested sessions, their images, and the splits.

    test_images : "seen_by_subject" (every shared image the subject saw) or
        "seen_by_all" (the authors' rule: only shared images shown within the
        first ``test_sessions`` sessions, which every NSD subject completed;
        907 images on NSD). Trials of shared images outside the test set are
        not used at all (they are not training images either).
    voxel_set : whose compact betas files give the trial counts (compact format)
    """
    log = as_logfn(log)
    if test_images not in TEST_IMAGE_RULES:
        raise ValueError(f"test_images must be one of {TEST_IMAGE_RULES}, got {test_images!r}")
    if test_images == "seen_by_all" and (test_sessions is None or test_sessions < 1):
        raise ValueError(f"test_images 'seen_by_all' needs test_sessions >= 1, got {test_sessions!r}")
    expdesign = nsd_tree.read_expdesign(root)
    offsets, counts, starts = _session_offsets(root, subject, sessions, betas_format, log, voxel_set)
    n_total = max(offsets[s] + counts[s] for s in sessions)
    all_ids, all_shared = nsd_tree.trial_images(expdesign, subject, n_total)
    used = np.concatenate([np.arange(offsets[s], offsets[s] + counts[s]) for s in sessions])
    shared_73k = expdesign["sharedix"] - 1
    bad = ~np.isin(all_ids[used][all_shared[used]], shared_73k)
    if bad.any():
        raise ValueError(
            f"{subject}: {int(bad.sum()):,} trials with masterordering <= {len(shared_73k)} show images "
            f"not in sharedix — is nsd_expdesign.mat intact?"
        )
    splits = split_images(all_ids[used], all_shared[used], protocol=protocol, val_fraction=val_fraction, seed=seed)
    if test_images == "seen_by_all":
        # sessions 1..test_sessions hold the trials before this one
        cutoff = starts.get(test_sessions + 1, n_total)
        early = used[used < cutoff]
        seen_by_all = np.unique(all_ids[early][all_shared[early]])
        dropped = len(splits["test"]) - len(seen_by_all)
        splits["test"] = seen_by_all
        if protocol == "paper":
            splits["val"] = seen_by_all
        log(f"{subject}: test images = shared images of sessions 1..{test_sessions} "
            f"({len(seen_by_all):,}; {dropped:,} shared images shown later are not used)")
    log(
        f"{subject}: {len(used):,} trials in sessions {list(sessions)}: "
        + ", ".join(f"{k} {len(v):,} images" for k, v in splits.items())
        + (" (val = test, protocol paper)" if protocol == "paper" else f" (protocol clean, seed {seed})")
    )
    # one row per image, ordered train | val | test so each split is a view
    parts = ["train", "test"] if protocol == "paper" else ["train", "val", "test"]
    row_ids = np.concatenate([splits[p] for p in parts])
    return TrialPlan(offsets, counts, all_ids, all_shared, splits, parts, row_ids)


def accumulate_sessions(
    root, subject: str, voxels: VoxelTable, plan: TrialPlan, *, protocol: str, betas_format: str = "nifti", log=None
) -> np.ndarray:
    """Step 3: read each session's betas, z-score, and average each image's repeats.

    Streams one session at a time: only the per-image sums (n_rows, n_voxels)
    float32 and one session are in memory. Returns the mean response of each
    row of ``plan.row_ids``: (n_rows, n_voxels) float32.
    """
    log = as_logfn(log)
    sums = np.zeros((len(plan.row_ids), voxels.n_voxels), dtype=np.float32)
    n_repeats = np.zeros(len(plan.row_ids), dtype=np.int64)
    for s in sorted(plan.offsets):
        sl = slice(plan.offsets[s], plan.offsets[s] + plan.counts[s])
        betas = nsd_tree.session_betas(root, subject, s, voxels.voxel_ijk, betas_format, voxels.voxel_set)
        if betas.shape != (plan.counts[s], voxels.n_voxels):
            raise ValueError(
                f"{subject}: session {s} betas are {betas.shape}, expected ({plan.counts[s]}, {voxels.n_voxels})"
            )
        stats_trials = None if protocol == "paper" else ~plan.trial_shared[sl]
        if stats_trials is not None and not stats_trials.any():
            raise ValueError(
                f"{subject}: session {s} has no training-image trials to z-score with (protocol clean)"
            )
        z = zscore_session(scale_betas(betas), stats_trials)
        del betas
        kept = np.isin(plan.trial_ids[sl], plan.row_ids)  # shared images outside the test set are dropped
        accumulate_by_image(sums, n_repeats, image_rows(plan.trial_ids[sl][kept], plan.row_ids), z[kept])
        del z
        log(f"{subject}: session {s:02d} ({plan.counts[s]} trials) z-scored and accumulated")
    sums /= n_repeats[:, None].astype(np.float32)
    reps = np.bincount(n_repeats)
    log(f"{subject}: repeats per image: " + ", ".join(f"{n}x {c:,}" for n, c in enumerate(reps) if c))
    return sums


# ---------------------------------------------------------------- orchestration


def _session_offsets(root, subject, sessions, betas_format, log, voxel_set=roi_voxels.NSDGENERAL):
    """First trial (0-based, into masterordering) and trial count of each requested
    session, and the first trial of every session 1..max(sessions) + 1.

    Session s starts after all trials of sessions 1..s-1. The counts of
    sessions not requested are read from their files' headers when present,
    else assumed equal to the requested sessions' common count (NSD: 750).
    """
    counts = {s: nsd_tree.session_trial_count(root, subject, s, betas_format, voxel_set) for s in sessions}
    offsets, starts, start = {}, {}, 0
    for s in range(1, max(sessions) + 1):
        if s in counts:
            n = counts[s]
        elif nsd_tree.betas_path(root, subject, s, betas_format, voxel_set).is_file():
            n = nsd_tree.session_trial_count(root, subject, s, betas_format, voxel_set)
        elif len(set(counts.values())) == 1:
            n = next(iter(counts.values()))
            log(f"{subject}: session {s} not present; assuming {n} trials as in the others")
        else:
            raise FileNotFoundError(
                f"{subject}: session {s} is not requested and its betas are absent, so the "
                f"trials of later sessions cannot be placed in masterordering"
            )
        starts[s] = start
        if s in counts:
            offsets[s] = start
        start += n
    starts[max(sessions) + 1] = start
    return offsets, counts, starts


def prepare_subject(
    root,
    subject: str,
    *,
    sessions,
    protocol: str,
    val_fraction: float = 0.1,
    seed: int = 0,
    betas_format: str = "nifti",
    expected_voxels: int | None = None,
    test_images: str = "seen_by_subject",
    test_sessions: int | None = None,
    expected_test_images: int | None = None,
    min_train_images: int | None = None,
    voxel_set: str = roi_voxels.NSDGENERAL,
    probe_rois: dict | None = None,
    out_path,
    log=None,
) -> PreparedSubject:
    """Prepare one subject of an NSD-layout tree and write ``out_path`` (see nrf.data.prepared).

    Parameters
    ----------
    root : the tree's root folder
    subject : "subjNN"
    sessions : 1-based session numbers, strictly increasing
    protocol : "paper" or "clean" (see the module docstring)
    val_fraction, seed : the clean protocol's validation split
    betas_format : "nifti" (betas_sessionNN.nii.gz) or "compact"
        (betas_sessionNN.{voxel_set}.hdf5)
    expected_voxels : if given, the number of nsdgeneral voxels must match
    test_images, test_sessions : the test-image rule (see :func:`trial_plan`)
    expected_test_images : if given, the number of test images must match
        (907 on NSD with the authors' rule)
    min_train_images : if given, stop before reading any betas when fewer
        training images remain (the largest of the config's ``shots``)
    voxel_set, probe_rois : "nsdgeneral" (the default: the prepared subject
        every model reads), or "probe_rois" with ``probe_rois`` ({name:
        {atlas, labels}}, probes.rois): Figure 4's ROI voxels outside
        nsdgeneral, prepared the same way (attrs voxel_set, probe_rois)
    log : a logging.Logger, a callable taking a str, or None (module logger)

    Returns the PreparedSubject that was written.
    """
    log = as_logfn(log)
    sessions = [int(s) for s in sessions]
    if not sessions or sessions[0] < 1 or any(b <= a for a, b in zip(sessions, sessions[1:])):
        raise ValueError(f"{subject}: sessions must be strictly increasing 1-based numbers, got {sessions}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if betas_format not in nsd_tree.BETAS_FORMATS:
        raise ValueError(f"betas_format must be one of {nsd_tree.BETAS_FORMATS}, got {betas_format!r}")
    nsd_tree.subject_index(subject)

    voxels = voxel_table(root, subject, expected_voxels=expected_voxels, voxel_set=voxel_set,
                         probe_rois=probe_rois, log=log)
    plan = trial_plan(
        root, subject, sessions, protocol=protocol, val_fraction=val_fraction, seed=seed,
        betas_format=betas_format, test_images=test_images, test_sessions=test_sessions, voxel_set=voxel_set,
        log=log,
    )
    n_test, n_train = len(plan.splits["test"]), len(plan.splits["train"])
    if expected_test_images is not None and n_test != int(expected_test_images):
        raise ValueError(
            f"{subject}: {n_test:,} test images, expected {int(expected_test_images):,} (shared images "
            f"shown within the first {test_sessions} sessions) — are all sessions read?"
        )
    if min_train_images is not None and n_train < int(min_train_images):
        raise ValueError(
            f"config key 'shots': {int(min_train_images):,} training images asked for, but {subject} has "
            f"{n_train:,} in sessions {sessions} ({protocol} protocol); lower 'shots' or read more sessions"
        )
    means = accumulate_sessions(root, subject, voxels, plan, protocol=protocol, betas_format=betas_format, log=log)

    bounds = plan.bounds
    views = {p: Split(means[bounds[i] : bounds[i + 1]], plan.splits[p]) for i, p in enumerate(plan.parts)}
    if protocol == "paper":
        views["val"] = views["test"]
    attrs = {
        "subject": subject,
        "protocol": protocol,
        "grid_shape": voxels.grid_shape,
        "sessions": sessions,
        "val_is_test": protocol == "paper",
        "test_images": test_images,
        "test_sessions": None if test_images == "seen_by_subject" else int(test_sessions),
    }
    if protocol == "clean":
        attrs.update(seed=int(seed), val_fraction=float(val_fraction))
    if voxel_set != roi_voxels.NSDGENERAL:  # the prepared subject's own file keeps the attrs it always had
        rois = {name: {"atlas": a, "labels": list(labels)} for name, (a, labels) in
                roi_voxels.parse_rois(probe_rois or {}).items()}
        attrs.update(voxel_set=voxel_set, probe_rois=json.dumps(rois, sort_keys=True))
    prepared = PreparedSubject(
        coords=voxels.coords, voxel_ijk=voxels.voxel_ijk, rois=voxels.rois, ncsnr=voxels.ncsnr,
        train=views["train"], val=views["val"], test=views["test"], attrs=attrs,
    )
    write_prepared(out_path, prepared)
    log(f"{subject}: wrote {Path(out_path)}")
    return prepared
