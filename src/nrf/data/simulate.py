"""A simulated Natural Scenes Dataset: a small tree in NSD's layout with a known ground truth.

:func:`simulate_nsd_tree` samples the generative model
(``nrf.data.sim_model.SimulatedBrain``, images from ``nrf.data.sim_images``)
at each subject's voxels and writes, under a root folder, the same keys the
real dataset has (``nrf.data.nsd_layout``), at a size that runs in minutes on
a laptop, so everything downstream of the tree is the code path the real data
takes (DESIGN.md §2, notes/simulation-findings.md).

What this module adds to the model is the experiment and the measurement:

- **Design**: the test images are shared by all subjects (the first columns of
  ``subjectim``), the training images are distinct across subjects; one
  ``masterordering`` shows every image ``repeats`` times.
- **Measurement**: ``beta = amp_v * (gain_sv * (ncsnr_v * r_v + noise) + offset_sv)``
  per trial, with per-voxel amplitude, per-session per-voxel gain and offset
  (so per-session z-scoring matters) and per-voxel ncsnr (median 0.35: after
  per-session z-scoring the noiseless response correlates ~0.3 with one
  trial and ~0.5 with the average of three). Stored as int16 ``round(beta * 300)``, NSD's convention.

Besides NSD's keys it writes ``simulation/{subject}_noiseless.hdf5`` (the
ground truth and each voxel's tuning region, docs/CONTRACTS.md),
``simulation/image_latents.hdf5`` (every image's latents and category) and
``simulation/parameters.json``.

Every file is written deterministically (gzip and MAT headers without
timestamps, HDF5 without object times): the same parameters give the same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from contextlib import contextmanager
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from nrf.atomic import atomic_output
from nrf.checks import add_dataset
from nrf.data import nsd_layout
from nrf.data.sim_images import (
    CATEGORIES,
    LATENTS,
    LOW_LEVEL_LATENTS,
    N_LOW,
    latent_covariance,
    render_images,
    sample_image_latents,
)
from nrf.data.sim_model import (
    _DESIGN,
    _SUBJECT,
    ALL_SUBJECTS,
    FOV_BOX,
    FOV_MARGIN,
    HEAD_CENTRE,
    HEAD_RADII,
    REGIONS,
    SimulatedBrain,
    SimulationParams,
    rng,
    subject_geometry,
    subject_number,
    template_anatomy,
    tuning_regions,
    voxel_weights,
)

# The model's names stay importable from here, where they lived before the split.
__all__ = ["ALL_SUBJECTS", "CATEGORIES", "LATENTS", "LOW_LEVEL_LATENTS", "N_LOW", "REGIONS", "SimulatedBrain",
           "SimulationParams", "latent_covariance", "render_images", "sample_image_latents", "simulate_nsd_tree",
           "subject_geometry", "template_anatomy", "voxel_weights"]


def simulate_nsd_tree(root, params: SimulationParams | None = None, **overrides) -> dict:
    """Write a simulated NSD tree under ``root``; return a summary.

    ``params`` (default: ``SimulationParams()``) with any of its fields
    overridden by keyword, e.g. ``simulate_nsd_tree(root, subjects=["subj01"],
    seed=3, n_train_images=60)``; an unknown keyword is a TypeError naming it.
    Rows of ``subjectim`` for subjects not simulated hold valid ids that
    repeat simulated subjects' training images (never read them as data).

    Returns
    -------
    dict with ``root``, ``n_images`` (the "73k" space), ``n_trials``,
    ``n_sessions``, ``test_ids`` and per subject ``subjects[s]`` =
    {grid_shape, voxel_size, n_brainmask, n_voxels (brainmask ∩ nsdgeneral),
    roi_counts}.
    """
    root = Path(root)
    if params is None:
        params = SimulationParams.from_keywords(**overrides)
    elif overrides:
        params = dataclasses.replace(params, **overrides)
    brain = SimulatedBrain(params)
    design = _design(params)
    _write_design(root, params, design)
    _write_images(root, params, brain.images)

    summary = {"root": str(root), "n_images": params.n_images, "n_trials": params.n_trials,
               "n_sessions": params.n_sessions, "trials_per_session": int(params.trials_per_session),
               "test_ids": design["test_ids"].tolist(), "subjects": {}}
    for s in params.subjects:
        subject_ids = design["subjectim"][subject_number(s) - 1]
        summary["subjects"][s] = _write_subject(root, brain, s, subject_ids, design["masterordering"])

    (root / "simulation").mkdir(parents=True, exist_ok=True)
    (root / "simulation" / "parameters.json").write_text(
        json.dumps({"parameters": params.as_json(), "summary": {k: v for k, v in summary.items() if k != "root"}},
                   indent=1, sort_keys=True) + "\n")
    return summary


# ---------------------------------------------------------------------------
# The experiment: who sees which image when
# ---------------------------------------------------------------------------
def _design(params: SimulationParams) -> dict[str, np.ndarray]:
    """``test_ids`` (n_test,), ``subjectim`` (8, n_img) 0-based ids, ``masterordering``
    (n_trials,) 1-based columns of ``subjectim``."""
    n_img, n_test, n_train = params.images_per_subject, params.n_test_images, params.n_train_images
    drng = rng(params.seed, _DESIGN)
    perm = drng.permutation(params.n_images)
    test_ids = np.sort(perm[:n_test])
    train_ids = {s: np.sort(perm[n_test + k * n_train: n_test + (k + 1) * n_train])
                 for k, s in enumerate(params.subjects)}
    subjectim = np.zeros((8, n_img), np.int64)
    other_pool = np.sort(perm[n_test:])
    for row, s in enumerate(ALL_SUBJECTS):
        ids = train_ids.get(s)
        if ids is None:  # not simulated: valid ids, but shared with simulated subjects
            ids = np.sort(drng.choice(other_pool, n_train, replace=len(other_pool) < n_train))
        subjectim[row] = np.concatenate([test_ids, ids])
    masterordering = rng(params.seed, _DESIGN, 1).permutation(np.repeat(np.arange(1, n_img + 1), params.repeats))
    return {"test_ids": test_ids, "subjectim": subjectim, "masterordering": masterordering}


def _write_design(root, params, design):
    _save_mat({
        "masterordering": design["masterordering"][None].astype(np.int32),
        "subjectim": (design["subjectim"] + 1).astype(np.int32),
        "sharedix": (design["test_ids"][None] + 1).astype(np.int32),
    }, root / nsd_layout.EXPDESIGN)
    _write_stim_info(root / nsd_layout.STIM_INFO, params.n_images, design["test_ids"], design["subjectim"],
                     design["masterordering"], params.repeats)


def _write_stim_info(path, n_total, test_ids, subjectim, masterordering, repeats):
    shared = np.zeros(n_total, bool)
    shared[test_ids] = True
    seen = np.zeros((8, n_total), np.int64)
    reps = np.zeros((8, repeats, n_total), np.int64)
    # trial numbers (1-based) at which each subject column is shown, in order
    order = np.argsort(masterordering, kind="stable")
    trials_of_col = (order + 1).reshape(-1, repeats)  # (n_img, repeats)
    for row in range(8):
        seen[row, subjectim[row]] = 1
        for r in range(repeats):
            reps[row, r, subjectim[row]] = trials_of_col[:, r]
    header = ["", "cocoId", "cocoSplit", "nsdId", "shared1000"]
    header += [f"subject{s + 1}" for s in range(8)]
    header += [f"subject{s + 1}_rep{r}" for s in range(8) for r in range(repeats)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for i in range(n_total):
        w.writerow([i, 900000 + i, "simulated", i, bool(shared[i])]
                   + [int(seen[s, i]) for s in range(8)]
                   + [int(reps[s, r, i]) for s in range(8) for r in range(repeats)])
    with atomic_output(path) as tmp:
        tmp.write_text(buf.getvalue())


def _write_images(root, params, images):
    size = params.image_size
    with _H5Writer(root / nsd_layout.STIMULI) as f:
        _dataset(f, "imgBrick", render_images(images, size), chunks=(1, size, size, 3), compression="gzip",
                 compression_opts=4)
    with _H5Writer(root / "simulation" / "image_latents.hdf5") as f:
        _dataset(f, "latents", images["latents"].astype(np.float32))
        _dataset(f, "category", images["category"])
        f.attrs["latent_names"] = np.array(LATENTS, dtype="S")
        f.attrs["categories"] = np.array(CATEGORIES, dtype="S")
        f.attrs["n_low_level"] = N_LOW


# ---------------------------------------------------------------------------
# A subject: its grid's volumes, the ground truth at its voxels, its betas
# ---------------------------------------------------------------------------
def _write_subject(root, brain: SimulatedBrain, s, subject_ids, masterordering):
    p = brain.params
    geo = brain.geometry(s)
    shape, affine = geo["shape"], geo["affine"]
    mni = geo["mni"].reshape(-1, 3)
    anat_pts = geo["anat"].reshape(-1, 3)
    lo, hi = FOV_BOX[0] - FOV_MARGIN, FOV_BOX[1] + FOV_MARGIN
    anat = template_anatomy(anat_pts)
    brainmask = anat["brain"] & np.all((mni >= lo) & (mni <= hi), axis=1)
    nsdgen = anat["nsdgeneral"] & brainmask
    roi_counts = _write_grid_volumes(root, s, shape, affine, mni, anat, brainmask, nsdgen)

    # the field and the measurement model at brainmask voxels (C-order of the grid)
    mrng = rng(p.seed, _SUBJECT, subject_number(s), 4)
    bidx = np.flatnonzero(brainmask)
    in_ng = nsdgen[bidx]
    w = brain.weights_at_template(anat_pts[bidx], s)
    smooth = brain.ncsnr_field(anat_pts[bidx])[:, 0] / brain.ncsnr_ref
    ncsnr = p.ncsnr_median * np.exp(p.ncsnr_spread * smooth + 0.1 * mrng.standard_normal(len(bidx)))
    ncsnr[~in_ng] *= p.outside_ncsnr_factor
    vol = np.zeros(len(mni), np.float32)
    vol[bidx] = ncsnr
    _save_nifti(vol.reshape(shape), affine, root / nsd_layout.ncsnr(s))
    amp = p.amplitude_median * np.exp(0.3 * mrng.standard_normal(len(bidx)))
    z = brain.images["latents"][subject_ids]  # (n_img, 9), rows in the subject's image order
    resp = (z @ w.T).astype(np.float32)  # (n_img, n_brainmask)

    # ground truth at brainmask ∩ nsdgeneral
    order = np.argsort(subject_ids)
    ijk = np.stack(np.unravel_index(bidx[in_ng], shape), axis=1)
    with _H5Writer(root / "simulation" / f"{s}_noiseless.hdf5") as f:
        _checked(f, "image_ids", subject_ids[order].astype(np.int64))
        _checked(f, "responses", resp[order][:, in_ng])
        _checked(f, "voxel_ijk", ijk.astype(np.int32))
        _checked(f, "mni", mni[bidx[in_ng]].astype(np.float32))
        _checked(f, "anat", anat_pts[bidx[in_ng]].astype(np.float32))
        _checked(f, "weights", w[in_ng].astype(np.float32))
        _checked(f, "ncsnr", ncsnr[in_ng].astype(np.float32))
        _checked(f, "amplitude", amp[in_ng].astype(np.float32))
        _checked(f, "regions", tuning_regions(w[in_ng]))
        f.attrs["subject"] = s
        f.attrs["latent_names"] = np.array(LATENTS, dtype="S")
        f.attrs["region_names"] = np.array(REGIONS, dtype="S")

    _write_betas(root, s, p, shape, affine, bidx, resp, ncsnr, amp, masterordering, mrng)
    return {
        "grid_shape": [int(x) for x in shape], "voxel_size": geo["voxel_size"],
        "n_brainmask": int(brainmask.sum()), "n_voxels": int(nsdgen.sum()), "n_sessions": int(p.n_sessions),
        "roi_counts": roi_counts,
    }


def _write_grid_volumes(root, s, shape, affine, mni, anat, brainmask, nsdgen):
    """brainmask, ROI atlases and the MNI transform on the subject's grid; returns ROI voxel counts."""
    _save_nifti(brainmask.reshape(shape).astype(np.uint8), affine, root / nsd_layout.brainmask(s))
    ng = np.where(brainmask, nsdgen.astype(np.int16), np.int16(-1))
    _save_nifti(ng.reshape(shape), affine, root / nsd_layout.roi(s, "nsdgeneral"))
    roi_counts = {}
    for atlas, names in nsd_layout.ROI_ATLASES.items():
        lab = np.where(brainmask, anat[atlas], np.int16(-1)).astype(np.int16)
        _save_nifti(lab.reshape(shape), affine, root / nsd_layout.roi(s, atlas))
        roi_counts[atlas] = {name: int(((lab == k) & nsdgen).sum()) for k, name in names.items()}
    head = (((mni - HEAD_CENTRE) / HEAD_RADII) ** 2).sum(1) < 1.0
    transform = nsd_layout.transform_index_from_mni(mni) + 1.0
    transform[~head] = nsd_layout.TRANSFORM_INVALID
    _save_nifti(transform.reshape(*shape, 3).astype(np.float32), affine, root / nsd_layout.mni_transform(s))
    return roi_counts


def _write_betas(root, s, p, shape, affine, bidx, resp, ncsnr, amp, masterordering, mrng):
    """Measured betas, session by session: NIfTI (and the HDF5 twin if asked)."""
    n_vox, n_grid, tps = len(bidx), int(np.prod(shape)), p.trials_per_session
    for sess in range(p.n_sessions):
        cols = masterordering[sess * tps: (sess + 1) * tps] - 1
        gain = np.exp(p.drift_gain_sd * mrng.standard_normal(n_vox))
        offset = p.drift_offset_sd * (mrng.standard_normal(n_vox) + 0.5 * mrng.standard_normal())
        noise = mrng.standard_normal((tps, n_vox), dtype=np.float32)
        beta = amp * (gain * (ncsnr * resp[cols] + p.trial_noise_sd * noise) + offset)
        b16 = np.clip(np.rint(beta * nsd_layout.BETA_SCALE), -32768, 32767).astype(np.int16)
        full = np.zeros((n_grid, tps), np.int16)
        full[bidx] = b16.T
        _save_nifti(full.reshape(*shape, tps), affine, root / nsd_layout.betas(s, sess + 1))
        if p.hdf5_twins:
            _write_betas_twin(root / nsd_layout.betas(s, sess + 1, "hdf5"), b16, bidx, shape)


def _write_betas_twin(path, b16, bidx, shape):
    """``/betas`` (T, Z, Y, X) int16, one chunk per voxel; chunks outside the brain stay unallocated (0)."""
    T = b16.shape[0]
    X, Y, Z = shape
    with _H5Writer(path) as f:
        d = f.create_dataset("betas", shape=(T, Z, Y, X), dtype="<i2", chunks=(T, 1, 1, 1),
                             fillvalue=0, track_times=False)
        i, j, k = np.unravel_index(bidx, shape)
        data = np.ascontiguousarray(b16.T.astype("<i2"))  # (n_vox, T)
        for n in range(len(bidx)):
            d.id.write_direct_chunk((0, int(k[n]), int(j[n]), int(i[n])), data[n].tobytes())


# ---------------------------------------------------------------------------
# Writers (deterministic bytes)
# ---------------------------------------------------------------------------
def _save_nifti(data, affine, path: Path) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_output(path) as tmp:
        nib.save(img, tmp)


def _save_mat(arrays: dict, path: Path) -> None:
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, do_compression=False, oned_as="row")
    raw = bytearray(buf.getvalue())
    text = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: nrf.data.simulate"
    raw[:116] = text.ljust(116, b" ")  # the header otherwise holds the creation time
    with atomic_output(path) as tmp:
        tmp.write_bytes(bytes(raw))


@contextmanager
def _H5Writer(path: Path):
    """An HDF5 file written to a temporary name and moved into place on success."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        yield f


def _dataset(f, name, data, **kw):
    return f.create_dataset(name, data=data, track_times=False, **kw)


def _checked(f, name, data):
    """A dataset with a Fletcher-32 checksum per chunk (nrf.checks.add_dataset): for the
    noiseless responses, which the pipeline's own rules read (not an NSD stand-in)."""
    return add_dataset(f, name, data, track_times=False)
