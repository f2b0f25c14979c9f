"""The simulator's generative model: anatomy, a response field over MNI space, subjects.

Ask it what the simulated brain does, anywhere::

    brain = SimulatedBrain(SimulationParams(subjects=("subj01",), seed=0))
    r = brain.responses(image_ids, mni)            # (n_images, n_points) noiseless
    labels = brain.regions(mni)                    # (n_points,) index into REGIONS

What it embodies (DESIGN.md §2, notes/simulation-findings.md):

- **Responses** are linear in an image's 9 standardised latents
  (``nrf.data.sim_images``; rank 8: the four category indicators sum to
  one), ``r_v = w(a_v) · z``, with a weight field ``w`` over MNI space that is
  smooth (a sum of Gaussian bumps, 12 mm), shared across subjects, plus a
  subject-specific part at 0.3x. Optionally (``fine_scale_mm``, off by
  default) a shared fine-scale part with a length scale below the voxel size
  (a Gaussian random field of squared-exponential covariance, drawn as random
  Fourier components), so the field holds structure no single func grid
  resolves. Posterior points weigh the low-level
  latents, anterior ventral ones the category latents; face-, body- and
  place-selective ROIs prefer their category. Each point's weights are
  scaled so that its noiseless response has unit variance over the latents.
- **Anatomy**: a template brain (two hemisphere ellipsoids, cortex = a 6 mm
  shell) defines brainmask, nsdgeneral and the ROI atlases in MNI space (the
  atlases on a ribbon 3 mm deeper, so some ROI voxels lie outside nsdgeneral).
- **Subjects**: each has its own func grid (voxel size 4.0-4.6 mm, a small
  rotation, scale and shift from native to MNI, so subjects' voxel centres
  sit at different sub-voxel offsets in MNI) and a smooth registration
  error of ~3 mm: a point's reported MNI coordinate is ``m``, its anatomy and
  response are the template's at ``a = m + e_s(m)``.

Measurement (noise, drifts, ncsnr, int16 betas) and NSD's file layout live in
the writer, ``nrf.data.simulate``. Every random draw comes from a named
stream of the seed, so a model built twice from the same parameters is the
same model.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from nrf.data.sim_images import (
    CATEGORIES,
    LATENTS,
    N_LOW,
    latent_covariance,
    sample_image_latents,
)

ALL_SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
# Ground-truth tuning regions: low-level, or the category a point prefers.
REGIONS = ("low_level",) + CATEGORIES

# Named random streams: np.random.default_rng([seed, STREAM, ...]).
_FIELD, _IMAGES, _DESIGN, _SUBJECT = 1, 2, 3, 4
_FINE = 5  # the fine-scale field's own stream: switching it on moves no other draw
_FINE_COMPONENTS = 512  # random Fourier components of the fine-scale field

# ---------------------------------------------------------------------------
# Template anatomy in MNI millimetres
# ---------------------------------------------------------------------------
_HEMI_CENTRE = np.array([35.0, -18.0, 18.0])  # x sign flips per hemisphere
_HEMI_RADII = np.array([35.0, 88.0, 54.0])
HEAD_CENTRE = np.array([0.0, -18.0, 14.0])
HEAD_RADII = np.array([84.0, 104.0, 78.0])
_CORTEX_MM = 6.0  # cortical shell thickness
# The ROI atlases are drawn on a ribbon 3 mm deeper than the cortex nsdgeneral
# is made of: on NSD the label volumes and nsdgeneral are drawn apart, so an
# ROI (EBA, V1) reaches brainmask voxels nsdgeneral leaves out, and Figure 4
# must take its regions from the whole brain mask as the authors do
# (nrf.data.roi_voxels). Inside nsdgeneral (all cortex) no label changes.
_ROI_RIBBON_MM = _CORTEX_MM + 3.0
# nsdgeneral: the cortex in an occipital box plus a ventral temporal extension
_OCCIPITAL_BOX = np.array([[-75.0, -115.0, -32.0], [75.0, -46.0, 18.0]])
_VENTRAL_BOX = np.array([[-75.0, -115.0, -38.0], [75.0, -36.0, -6.0]])
# the func grids cover both boxes plus a margin
FOV_BOX = np.array([[-75.0, -115.0, -38.0], [75.0, -36.0, 18.0]])
FOV_MARGIN = 5.0

# ROI centres (x > 0; mirrored to both hemispheres unless left-only; moved onto the
# template's cortex, 3 mm deep, along the surface normal) and radii, mm
_FLOC_ROIS = {
    "floc-faces": {1: ((40, -78, -10), 8), 2: ((40, -58, -18), 8), 3: ((40, -48, -16), 7),
                   4: ((32, -30, -24), 6), 5: ((36, -8, -30), 6)},
    "floc-bodies": {1: ((48, -72, 2), 10), 2: ((42, -54, -14), 7), 3: ((42, -46, -12), 6),
                    4: ((30, -32, -20), 6)},
    "floc-places": {1: ((28, -84, 16), 9), 2: ((26, -50, -8), 9), 3: ((12, -56, 10), 8)},
    "floc-words": {1: ((-42, -76, -12), 7), 2: ((-44, -58, -16), 7), 3: ((-44, -48, -14), 6),
                   4: ((-40, -36, -16), 6), 5: ((-34, -26, -24), 6)},
}
_LEFT_ONLY = {"floc-words"}
# the category each floc atlas prefers (an index into CATEGORIES), for the field
_FLOC_CATEGORY = {"floc-faces": 0, "floc-bodies": 1, "floc-places": 2}


@dataclasses.dataclass
class SimulationParams:
    """Everything that decides a simulated dataset (the defaults are the pipeline's).

    subjects : names among subj01..subj08 (stored sorted); each gets its own func grid.
    n_train_images, n_test_images : images per subject; the test images are
        shared by all subjects, the training images are distinct across subjects.
    repeats : presentations of every image.
    trials_per_session : must divide ``(n_train_images + n_test_images) * repeats``.
    image_size : side of the square procedural images.
    seed : every random draw comes from named streams of this seed.
    hdf5_twins : also write each session's ``.hdf5`` twin of the betas.
    n_bumps, length_scale_mm : the shared weight field (and the subject-specific
        one, at ``individual_scale`` of its amplitude).
    roi_amplitude : weight of a face/body/place ROI's bump on its category.
    registration_error_mm : RMS of the smooth error between a voxel's reported
        MNI coordinate and the template position its response comes from.
    voxel_size_range : subjects' func voxel sizes are drawn from it (mm).
    ncsnr_median, ncsnr_spread : per-voxel noise-ceiling SNR, log-normal about
        the median (smooth over space); outside nsdgeneral it is scaled by
        ``outside_ncsnr_factor``.
    drift_offset_sd, drift_gain_sd : per-session per-voxel additive offset (in
        units of the voxel's noise SD) and log gain.
    amplitude_median : median noise SD of a voxel's betas (percent signal change).
    trial_noise_sd : scales the trial noise; 1 keeps ncsnr's meaning (0 is for tests).
    image_distractor, image_clutter : nuisance in the images (a distractor
        grating's maximum relative contrast; the SD of background blobs).
    fine_scale_mm : None (off, the default) or the length scale (mm) of a shared
        fine-scale part of the weight field (squared-exponential correlation
        ``exp(-d^2 / 2 l^2)``); below the voxel size (e.g. 2-3 mm against
        4.0-4.6 mm voxels) it is structure no single subject's grid resolves.
        Shared across subjects in template space, like the smooth part.
    fine_amplitude : RMS of the fine part relative to the smooth shared part's
        (over nsdgeneral), before each point's weights are scaled to unit
        response variance.
    """

    subjects: tuple[str, ...] | list[str] | str = ("subj01", "subj02", "subj05", "subj07")
    n_train_images: int = 1000
    n_test_images: int = 100
    repeats: int = 3
    trials_per_session: int = 300
    image_size: int = 64
    seed: int = 0
    hdf5_twins: bool = False
    n_bumps: int = 80
    length_scale_mm: float = 12.0
    individual_scale: float = 0.3
    roi_amplitude: float = 2.5
    registration_error_mm: float = 3.0
    voxel_size_range: tuple[float, float] = (4.0, 4.6)
    ncsnr_median: float = 0.35
    ncsnr_spread: float = 0.25
    outside_ncsnr_factor: float = 0.5
    drift_offset_sd: float = 1.0
    drift_gain_sd: float = 0.2
    amplitude_median: float = 1.0
    trial_noise_sd: float = 1.0
    image_distractor: float = 0.6
    image_clutter: float = 0.12
    fine_scale_mm: float | None = None
    fine_amplitude: float = 1.0

    def __post_init__(self):
        self.subjects = _check_subjects(self.subjects)
        if self.n_test_images < 1 or self.n_train_images < 1 or self.repeats < 1:
            raise ValueError(
                f"need at least one training and one test image and one repeat, got "
                f"n_train_images={self.n_train_images}, n_test_images={self.n_test_images}, "
                f"repeats={self.repeats}")
        if self.n_trials % self.trials_per_session:
            raise ValueError(
                f"{self.n_trials} trials ({self.images_per_subject} images x {self.repeats} repeats) do not "
                f"split into sessions of {self.trials_per_session}; choose trials_per_session dividing "
                f"{self.n_trials}")
        if self.fine_scale_mm is not None and not (np.isfinite(self.fine_scale_mm) and self.fine_scale_mm > 0):
            raise ValueError(f"fine_scale_mm must be None (off) or a positive length in mm, got {self.fine_scale_mm}")
        if not (np.isfinite(self.fine_amplitude) and self.fine_amplitude >= 0):
            raise ValueError(f"fine_amplitude must be a finite number >= 0, got {self.fine_amplitude}")

    @classmethod
    def from_keywords(cls, **kw) -> SimulationParams:
        """Build from keyword arguments, naming any that is not a parameter."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise TypeError(f"unknown simulation parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**kw)

    @property
    def images_per_subject(self) -> int:
        return self.n_train_images + self.n_test_images

    @property
    def n_trials(self) -> int:
        return self.images_per_subject * self.repeats

    @property
    def n_sessions(self) -> int:
        return self.n_trials // self.trials_per_session

    @property
    def n_images(self) -> int:
        """Images in the whole "73k" space: the shared test images plus every subject's own."""
        return self.n_test_images + len(self.subjects) * self.n_train_images

    def as_json(self) -> dict:
        """The parameters as JSON values (lists for tuples), for ``parameters.json``.

        The fine-scale keys appear only when the fine part is on, so a default
        dataset's ``parameters.json`` keeps the bytes it had before they existed."""
        out = dataclasses.asdict(self)
        out["subjects"] = list(self.subjects)
        out["voxel_size_range"] = list(self.voxel_size_range)
        if self.fine_scale_mm is None:
            del out["fine_scale_mm"], out["fine_amplitude"]
        return out


def _check_subjects(subjects):
    if isinstance(subjects, str):
        subjects = [subjects]
    subjects = list(subjects)
    bad = [s for s in subjects if s not in ALL_SUBJECTS]
    if bad or not subjects or len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects must be distinct names among {ALL_SUBJECTS}, got {subjects}")
    return sorted(subjects)


def rng(seed: int, *keys: int) -> np.random.Generator:
    """The named random stream ``keys`` of ``seed``."""
    return np.random.default_rng([int(seed), *map(int, keys)])


def subject_number(subject: str) -> int:
    return ALL_SUBJECTS.index(subject) + 1


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ellipsoid_depth(points, centre, radii):
    """(inside, depth in mm below the surface, first order) of points (n, 3)."""
    d = points - centre
    q = d / radii
    rho = np.sqrt((q ** 2).sum(-1))
    grad = np.sqrt((d ** 2 / radii ** 4).sum(-1)) / np.maximum(rho, 1e-9)
    depth = (1.0 - rho) / np.maximum(grad, 1e-9)
    return rho < 1.0, depth


def template_anatomy(points: np.ndarray) -> dict[str, np.ndarray]:
    """Anatomy of the template brain at MNI points (n, 3) mm.

    Returns ``brain``, ``cortex``, ``nsdgeneral`` (n,) bool and, for each atlas
    in ``nsd_layout.ROI_ATLASES``, (n,) int16 labels (0 = unlabelled; labels
    lie on a ribbon 3 mm deeper than the cortex, so they are not restricted to
    nsdgeneral and reach voxels outside it, as in NSD).
    """
    points = np.asarray(points, dtype=np.float64)
    brain = np.zeros(len(points), bool)
    cortex = np.zeros(len(points), bool)
    ribbon = np.zeros(len(points), bool)
    for sign in (-1.0, 1.0):
        centre = _HEMI_CENTRE * np.array([sign, 1.0, 1.0])
        inside, depth = _ellipsoid_depth(points, centre, _HEMI_RADII)
        brain |= inside
        cortex |= inside & (depth < _CORTEX_MM)
        ribbon |= inside & (depth < _ROI_RIBBON_MM)
    nsdgeneral = cortex & (_in_box(points, _OCCIPITAL_BOX) | _in_box(points, _VENTRAL_BOX))
    out = {"brain": brain, "cortex": cortex, "nsdgeneral": nsdgeneral}
    out["prf-visualrois"] = _visual_rois(points, ribbon)
    for atlas, rois in _floc_centres().items():
        labels = np.zeros(len(points), np.int16)
        best = np.full(len(points), np.inf)
        for label, centres, radius in rois:
            for c in centres:
                dist = np.linalg.norm(points - c, axis=1) / radius
                take = ribbon & (dist < 1.0) & (dist < best)
                labels[take] = label
                best[take] = dist[take]
        out[atlas] = labels
    return out


def _in_box(points, box):
    return np.all((points >= box[0]) & (points <= box[1]), axis=1)


@functools.lru_cache(maxsize=1)
def _floc_centres():
    """{atlas: [(label, centres, radius)]}: one centre per hemisphere (words: left only),
    moved to 3 mm below the template's surface."""
    out = {}
    for atlas, rois in _FLOC_ROIS.items():
        out[atlas] = []
        for label, (centre, radius) in rois.items():
            c = np.asarray(centre, dtype=np.float64)
            centres = [c] if atlas in _LEFT_ONLY else [c, c * np.array([-1.0, 1.0, 1.0])]
            out[atlas].append((label, tuple(_onto_cortex(c) for c in centres), float(radius)))
    return out


def _onto_cortex(c, depth_mm=3.0):
    """Move a point along its hemisphere ellipsoid's normal to ``depth_mm`` below the surface."""
    hc = _HEMI_CENTRE * np.array([1.0 if c[0] >= 0 else -1.0, 1.0, 1.0])
    for _ in range(20):
        _, depth = _ellipsoid_depth(c[None], hc, _HEMI_RADII)
        normal = (c - hc) / _HEMI_RADII ** 2
        c = c + (depth[0] - depth_mm) * normal / np.linalg.norm(normal)
    return c


def _visual_rois(points, ribbon):
    """V1-V3 as bands around a calcarine line, split ventral/dorsal; hV4 ventral; on ``ribbon`` only."""
    x, y, z = points.T
    labels = np.zeros(len(points), np.int16)
    # the calcarine line runs from the pole forward, at |x| = 8, z rising 2 -> 8
    t = np.clip((y + 106.0) / 30.0, 0.0, 1.0)
    calc_z = 2.0 + 6.0 * t
    dist = np.sqrt((np.abs(x) - 8.0) ** 2 + (z - calc_z) ** 2 + np.maximum(y + 76.0, 0.0) ** 2)
    ventral = z < calc_z
    for band, (lo, hi) in enumerate([(0.0, 12.0), (12.0, 20.0), (20.0, 28.0)]):
        sel = ribbon & (dist >= lo) & (dist < hi) & (labels == 0)
        labels[sel & ventral] = 1 + 2 * band  # V1v, V2v, V3v
        labels[sel & ~ventral] = 2 + 2 * band  # V1d, V2d, V3d
    hv4 = np.linalg.norm((np.abs(x) - 30.0, y + 76.0, z + 12.0), axis=0) < 9.0
    labels[ribbon & hv4 & (labels == 0)] = 7
    return labels


# ---------------------------------------------------------------------------
# The weight field
# ---------------------------------------------------------------------------
def sample_in_nsdgeneral(rng, n, margin=6.0):
    """n points spread over the template's nsdgeneral (jittered by ``margin`` mm)."""
    lo, hi = FOV_BOX
    out = []
    while sum(len(o) for o in out) < n:
        cand = rng.uniform(lo, hi, size=(4096, 3))
        out.append(cand[template_anatomy(cand)["nsdgeneral"]])
    pts = np.concatenate(out)[:n]
    return pts + rng.normal(0.0, margin / np.sqrt(3.0), size=pts.shape)


def _category_gate(points):
    """0 posterior .. 1 anterior ventral: how much a point weighs category over low level."""
    y, z = points[:, 1], points[:, 2]
    return _sigmoid((y + 70.0) / 6.0) * _sigmoid((4.0 - z) / 6.0)


class BumpField:
    """A sum of isotropic Gaussian bumps carrying vector weights."""

    def __init__(self, centres, weights, length_scale):
        self.centres = np.asarray(centres, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.length_scale = np.broadcast_to(np.asarray(length_scale, dtype=np.float64), (len(self.centres),))

    def __call__(self, points):
        d2 = ((points[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return np.exp(-0.5 * d2 / self.length_scale[None] ** 2) @ self.weights


class FourierField:
    """A stationary Gaussian random field of vector weights with squared-exponential
    correlation ``exp(-d^2 / 2 l^2)`` over space (random Fourier features):
    ``f(x) = scale * sqrt(2 / M) * sum_j a_j cos(omega_j . x + b_j)``, with
    ``omega_j ~ N(0, I / l^2)`` (rad/mm), ``b_j ~ U(0, 2 pi)``, ``a_j ~ N(0, I)``.
    Each output has variance ``scale^2`` everywhere; defined at any point, cheap
    at any length scale (a bump field this fine would need tens of thousands of bumps)."""

    def __init__(self, rng, n_components, length_scale, n_out, scale=1.0):
        self.length_scale = float(length_scale)
        self.omega = rng.normal(0.0, 1.0 / self.length_scale, size=(3, n_components))
        self.phase = rng.uniform(0.0, 2.0 * np.pi, size=n_components)
        self.weights = rng.standard_normal((n_components, n_out)) * np.sqrt(2.0 / n_components)
        self.scale = float(scale)

    def __call__(self, points):
        points = np.asarray(points, dtype=np.float64)
        return self.scale * (np.cos(points @ self.omega + self.phase) @ self.weights)


def _fine_field(seed, length_scale, amplitude, shared):
    """The shared fine-scale part: a :class:`FourierField` whose RMS is ``amplitude``
    times the smooth shared field's RMS over nsdgeneral (its own stream of ``seed``)."""
    frng = rng(seed, _FINE)
    field = FourierField(frng, _FINE_COMPONENTS, length_scale, len(LATENTS))
    ref = shared(sample_in_nsdgeneral(rng(seed, _FINE, 1), 2000, margin=0.0))
    field.scale = amplitude * float(np.sqrt((ref ** 2).mean()))
    return field


def _random_field(rng, n_bumps, length_scale):
    centres = sample_in_nsdgeneral(rng, n_bumps)
    weights = rng.standard_normal((n_bumps, len(LATENTS)))
    return BumpField(centres, weights, length_scale)


def _roi_field(amplitude):
    """Bumps at the face/body/place ROIs that weigh their category."""
    centres, weights, scales = [], [], []
    for atlas, cat in _FLOC_CATEGORY.items():
        for _, cs, radius in _floc_centres()[atlas]:
            for c in cs:
                w = np.zeros(len(LATENTS))
                w[N_LOW + cat] = amplitude
                centres.append(c)
                weights.append(w)
                scales.append(radius)
    return BumpField(centres, weights, scales)


def _gated(field, points):
    w = field(points)
    g = _category_gate(points)[:, None]
    w[:, :N_LOW] *= 1.0 - 0.9 * g
    w[:, N_LOW:] *= 0.1 + g
    return w


def voxel_weights(points, shared, individual, roi, *, individual_scale, fine=None):
    """(n, 9) latent weights at anatomical points, scaled to unit response variance.

    ``fine`` (optional) is the shared fine-scale field, gated like the smooth one."""
    w = _gated(shared, points) + individual_scale * _gated(individual, points) + roi(points)
    if fine is not None:
        w = w + _gated(fine, points)
    var = np.einsum("vk,kl,vl->v", w, latent_covariance(), w)
    return w / np.sqrt(np.maximum(var, 1e-12))[:, None]


def tuning_regions(weights: np.ndarray) -> np.ndarray:
    """(n,) int8 index into REGIONS from unit-variance weights (n, 9).

    A point is ``low_level`` when the low-level latents explain at least as
    much of its response variance as the category ones; otherwise it is the
    category its weights prefer (the largest category weight).
    """
    cov = latent_covariance()
    low = np.einsum("vk,kl,vl->v", weights[:, :N_LOW], cov[:N_LOW, :N_LOW], weights[:, :N_LOW])
    cat = np.einsum("vk,kl,vl->v", weights[:, N_LOW:], cov[N_LOW:, N_LOW:], weights[:, N_LOW:])
    preferred = 1 + weights[:, N_LOW:].argmax(1)
    return np.where(low >= cat, 0, preferred).astype(np.int8)


# ---------------------------------------------------------------------------
# Subjects: grids, registration
# ---------------------------------------------------------------------------
def _rotation(angles):
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


class RegistrationError:
    """A subject's smooth error e(m) (n, 3) mm between reported MNI and template position,
    ``registration_error_mm`` RMS over nsdgeneral."""

    def __init__(self, seed: int, subject: str, registration_error_mm: float):
        number = subject_number(subject)
        erng = rng(seed, _SUBJECT, number, 1)
        self.field = BumpField(sample_in_nsdgeneral(erng, 40, margin=20.0), erng.standard_normal((40, 3)), 25.0)
        ref = self.field(sample_in_nsdgeneral(rng(seed, _SUBJECT, number, 2), 2000, margin=0.0))
        self.rms_mm = registration_error_mm
        self.norm = np.sqrt((ref ** 2).sum(1).mean())

    def __call__(self, mni):
        return self.field(mni) * self.rms_mm / self.norm


def subject_geometry(seed: int, subject: str, *, voxel_size_range=(4.0, 4.6), registration_error_mm=3.0) -> dict:
    """A subject's func grid and its map to MNI.

    Returns ``shape`` (X, Y, Z), ``affine`` (4, 4) native mm, ``voxel_size``,
    ``mni`` (X, Y, Z, 3) reported MNI mm of every grid voxel, and ``anat``
    (X, Y, Z, 3) the template position that voxel's anatomy and response
    come from (``mni`` + a smooth registration error).
    """
    rng_ = rng(seed, _SUBJECT, subject_number(subject), 0)
    vs = rng_.uniform(*voxel_size_range)
    scale = rng_.uniform(0.97, 1.03)  # native brain size relative to the template
    rot = _rotation(np.deg2rad(rng_.normal(0.0, 3.0, 3)))
    shift = rng_.normal(0.0, 2.0, 3)
    native_origin = rng_.uniform(-60, 60, 3)  # arbitrary scanner-space placement
    # MNI = rot @ (native - native_origin) / scale + shift
    lo, hi = FOV_BOX[0] - FOV_MARGIN, FOV_BOX[1] + FOV_MARGIN
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    native_corners = (corners - shift) @ rot * scale + native_origin
    n_lo = native_corners.min(0) - rng_.uniform(0, vs, 3)
    shape = tuple(int(s) for s in np.ceil((native_corners.max(0) - n_lo) / vs) + 1)
    affine = np.eye(4)
    affine[:3, :3] *= vs
    affine[:3, 3] = n_lo
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    native = n_lo + vs * ijk
    mni = ((native - native_origin) / scale) @ rot.T + shift
    err = RegistrationError(seed, subject, registration_error_mm)(mni)
    return {
        "shape": shape, "affine": affine, "voxel_size": float(vs), "scale": float(scale),
        "mni": mni.reshape(*shape, 3), "anat": (mni + err).reshape(*shape, 3),
    }


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
class SimulatedBrain:
    """The ground truth of a simulated dataset, to query at any MNI coordinate.

    ``subject=None`` asks the template (the population field: no
    subject-specific part, no registration error); a subject's name asks that
    subject, whose reported coordinate ``m`` responds as the template at
    ``m + e_s(m)``. The writer samples exactly these functions at each
    subject's voxels, so ``responses`` at a voxel's reported coordinate equals
    the ``responses`` stored in ``simulation/{subject}_noiseless.hdf5``.
    """

    def __init__(self, params: SimulationParams | None = None):
        self.params = params if params is not None else SimulationParams()
        p = self.params
        frng = rng(p.seed, _FIELD)  # the draw order below is part of the model
        self.shared = _random_field(frng, p.n_bumps, p.length_scale_mm)
        self.ncsnr_field = BumpField(sample_in_nsdgeneral(frng, p.n_bumps, margin=10.0),
                                     frng.standard_normal((p.n_bumps, 1)), 2 * p.length_scale_mm)
        self.ncsnr_ref = self.ncsnr_field(sample_in_nsdgeneral(frng, 2000, margin=0.0))[:, 0].std()
        self.roi = _roi_field(p.roi_amplitude)
        self.fine = (None if p.fine_scale_mm is None
                     else _fine_field(p.seed, p.fine_scale_mm, p.fine_amplitude, self.shared))
        self._individual: dict[str, BumpField] = {}
        self._registration: dict[str, RegistrationError] = {}

    # --- images ---
    @functools.cached_property
    def images(self) -> dict[str, np.ndarray]:
        """Every image's latents, category and render parameters (see ``sample_image_latents``)."""
        p = self.params
        return sample_image_latents(rng(p.seed, _IMAGES), p.n_images, distractor=p.image_distractor,
                                    blob_sd=p.image_clutter)

    def latents(self, image_ids) -> np.ndarray:
        """(n, 9) standardised latents of images by 0-based id."""
        ids = np.asarray(image_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.params.n_images):
            raise ValueError(f"image ids must lie in [0, {self.params.n_images}), got {ids.min()}..{ids.max()}")
        return self.images["latents"][ids]

    # --- subjects ---
    def _subject(self, subject):
        if subject not in self.params.subjects:
            raise ValueError(f"subject {subject!r} is not simulated here; subjects are {self.params.subjects}")
        return subject

    def individual(self, subject: str) -> BumpField:
        """The subject-specific part of the weight field."""
        if subject not in self._individual:
            p = self.params
            self._individual[subject] = _random_field(
                rng(p.seed, _SUBJECT, subject_number(self._subject(subject)), 3), p.n_bumps, p.length_scale_mm)
        return self._individual[subject]

    def registration_error(self, subject: str) -> RegistrationError:
        if subject not in self._registration:
            self._registration[subject] = RegistrationError(
                self.params.seed, self._subject(subject), self.params.registration_error_mm)
        return self._registration[subject]

    def geometry(self, subject: str) -> dict:
        """The subject's func grid (see :func:`subject_geometry`)."""
        p = self.params
        return subject_geometry(p.seed, self._subject(subject), voxel_size_range=p.voxel_size_range,
                                registration_error_mm=p.registration_error_mm)

    # --- the field ---
    def template_position(self, mni, subject=None) -> np.ndarray:
        """(n, 3) template positions whose anatomy and response a reported MNI point (n, 3) has."""
        mni = np.asarray(mni, dtype=np.float64).reshape(-1, 3)
        if subject is None:
            return mni
        return mni + self.registration_error(subject)(mni)

    def weights_at_template(self, points, subject=None) -> np.ndarray:
        """(n, 9) unit-variance latent weights at template positions (n, 3)."""
        if subject is None:
            return voxel_weights(points, self.shared, self.shared, self.roi, individual_scale=0.0, fine=self.fine)
        return voxel_weights(points, self.shared, self.individual(subject), self.roi,
                             individual_scale=self.params.individual_scale, fine=self.fine)

    def weights(self, mni, subject=None) -> np.ndarray:
        """(n, 9) latent weights at reported MNI points (n, 3) mm."""
        return self.weights_at_template(self.template_position(mni, subject), subject)

    def responses(self, image_ids, mni, subject=None, *, latents=None, chunk=4096) -> np.ndarray:
        """(n_images, n_points) float64 noiseless responses of images (0-based ids, or
        ``latents`` (n, 9) given instead) at MNI points (n_points, 3) mm, in chunks of points."""
        z = self.latents(image_ids) if latents is None else np.asarray(latents, dtype=np.float64)
        mni = np.asarray(mni, dtype=np.float64).reshape(-1, 3)
        out = np.empty((len(z), len(mni)))
        for start in range(0, len(mni), chunk):
            sl = slice(start, start + chunk)
            out[:, sl] = z @ self.weights(mni[sl], subject).T
        return out

    def regions(self, mni, subject=None) -> np.ndarray:
        """(n,) int8 ground-truth tuning region (index into REGIONS) at MNI points (n, 3)."""
        return tuning_regions(self.weights(mni, subject))

    def anatomy(self, mni, subject=None) -> dict[str, np.ndarray]:
        """Template anatomy (brain, cortex, nsdgeneral, atlases) at reported MNI points (n, 3)."""
        return template_anatomy(self.template_position(mni, subject))
