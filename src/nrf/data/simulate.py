"""A simulated Natural Scenes Dataset: a small tree in NSD's layout with a known ground truth.

:func:`simulate_nsd_tree` writes, under a root folder, the same keys the real
dataset has (``nrf.data.nsd_layout``), at a size that runs in minutes on a
laptop, so everything downstream of the tree is the code path the real data
takes. What it embodies (DESIGN.md §2, notes/simulation-findings.md):

- **Images** are procedural (64 x 64 by default), rendered from per-image
  latent factors: five low-level ones (grating orientation as cos 2θ and
  sin 2θ, log spatial frequency, luminance, red-green colour) and one
  category of four (face-like, body-like, place-like, object), plus nuisance
  variables a response ignores but an image feature sees (grating contrast
  and phase, a second distractor grating, blue-yellow tint, background
  clutter, the shape's position, size and colour), so image features carry
  the latents only noisily.
- **Responses** are linear in the 9 standardised latents (rank 8: the four
  category indicators sum to one), ``r_v = w(a_v) · z``, with a weight field
  ``w`` over MNI space that is smooth (a sum of Gaussian bumps, 12 mm),
  shared across subjects, plus a subject-specific part at 0.3x. Posterior
  voxels weigh the low-level latents, anterior ventral voxels the category
  ones; face-, body- and place-selective ROIs prefer their category. Each
  voxel's weights are scaled so that its noiseless response has unit
  variance over the latent distribution.
- **Anatomy**: a template brain (two hemisphere ellipsoids, cortex = a 6 mm
  shell) defines brainmask, nsdgeneral and the ROI atlases in MNI space.
  Every subject has its own func grid (voxel size 4.0-4.6 mm, a small
  rotation, scale and shift from native to MNI) and a smooth registration
  error of ~3 mm: voxel v's reported MNI coordinate (the transform file) is
  ``m_v``, its anatomy and response are the template's at ``a_v = m_v + e(m_v)``.
- **Measurement**: ``beta = amp_v * (gain_sv * (ncsnr_v * r_v + noise) + offset_sv)``
  per trial, with per-voxel amplitude, per-session per-voxel gain and offset
  (so per-session z-scoring matters) and per-voxel ncsnr (median 0.35: after
  per-session z-scoring the noiseless response correlates ~0.3 with one
  trial and ~0.5 with the average of three). Stored as int16 ``round(beta * 300)``, NSD's convention.

Besides NSD's keys it writes ``simulation/{subject}_noiseless.hdf5`` (the
ground truth, docs/CONTRACTS.md), ``simulation/image_latents.hdf5`` (every
image's latents and category) and ``simulation/parameters.json``.

Everything is drawn from named streams of ``seed`` and every file is written
deterministically (gzip and MAT headers without timestamps, HDF5 without
object times): the same arguments give the same bytes.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from contextlib import contextmanager
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from nrf.atomic import atomic_output
from nrf.data import nsd_layout

ALL_SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
CATEGORIES = ("face", "body", "place", "object")
LOW_LEVEL_LATENTS = ("orientation_cos", "orientation_sin", "spatial_frequency", "luminance", "colour_rg")
LATENTS = LOW_LEVEL_LATENTS + tuple(f"category_{c}" for c in CATEGORIES)
N_LOW = len(LOW_LEVEL_LATENTS)

# Named random streams: np.random.default_rng([seed, STREAM, ...]).
_FIELD, _IMAGES, _DESIGN, _SUBJECT = 1, 2, 3, 4

# ---------------------------------------------------------------------------
# Template anatomy in MNI millimetres
# ---------------------------------------------------------------------------
_HEMI_CENTRE = np.array([35.0, -18.0, 18.0])  # x sign flips per hemisphere
_HEMI_RADII = np.array([35.0, 88.0, 54.0])
_HEAD_CENTRE = np.array([0.0, -18.0, 14.0])
_HEAD_RADII = np.array([84.0, 104.0, 78.0])
_CORTEX_MM = 6.0  # cortical shell thickness
# nsdgeneral: the cortex in an occipital box plus a ventral temporal extension
_OCCIPITAL_BOX = np.array([[-75.0, -115.0, -32.0], [75.0, -46.0, 18.0]])
_VENTRAL_BOX = np.array([[-75.0, -115.0, -38.0], [75.0, -36.0, -6.0]])
# the func grids cover both boxes plus a margin
_FOV_BOX = np.array([[-75.0, -115.0, -38.0], [75.0, -36.0, 18.0]])
_FOV_MARGIN = 5.0
# the spatial frequency latent: log-uniform cycles per image
_SF_RANGE = (1.5, 8.0)

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


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *map(int, keys)])


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
    are cortical, not restricted to nsdgeneral, as in NSD).
    """
    points = np.asarray(points, dtype=np.float64)
    brain = np.zeros(len(points), bool)
    cortex = np.zeros(len(points), bool)
    for sign in (-1.0, 1.0):
        centre = _HEMI_CENTRE * np.array([sign, 1.0, 1.0])
        inside, depth = _ellipsoid_depth(points, centre, _HEMI_RADII)
        brain |= inside
        cortex |= inside & (depth < _CORTEX_MM)
    nsdgeneral = cortex & (_in_box(points, _OCCIPITAL_BOX) | _in_box(points, _VENTRAL_BOX))
    out = {"brain": brain, "cortex": cortex, "nsdgeneral": nsdgeneral}
    out["prf-visualrois"] = _visual_rois(points, cortex)
    for atlas, rois in _floc_centres().items():
        labels = np.zeros(len(points), np.int16)
        best = np.full(len(points), np.inf)
        for label, centres, radius in rois:
            for c in centres:
                dist = np.linalg.norm(points - c, axis=1) / radius
                take = cortex & (dist < 1.0) & (dist < best)
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


def _visual_rois(points, cortex):
    """V1-V3 as bands around a calcarine line, split ventral/dorsal; hV4 ventral."""
    x, y, z = points.T
    labels = np.zeros(len(points), np.int16)
    # the calcarine line runs from the pole forward, at |x| = 8, z rising 2 -> 8
    t = np.clip((y + 106.0) / 30.0, 0.0, 1.0)
    calc_z = 2.0 + 6.0 * t
    dist = np.sqrt((np.abs(x) - 8.0) ** 2 + (z - calc_z) ** 2 + np.maximum(y + 76.0, 0.0) ** 2)
    ventral = z < calc_z
    for band, (lo, hi) in enumerate([(0.0, 12.0), (12.0, 20.0), (20.0, 28.0)]):
        sel = cortex & (dist >= lo) & (dist < hi) & (labels == 0)
        labels[sel & ventral] = 1 + 2 * band  # V1v, V2v, V3v
        labels[sel & ~ventral] = 2 + 2 * band  # V1d, V2d, V3d
    hv4 = np.linalg.norm((np.abs(x) - 30.0, y + 76.0, z + 12.0), axis=0) < 9.0
    labels[cortex & hv4 & (labels == 0)] = 7
    return labels


# ---------------------------------------------------------------------------
# The response field
# ---------------------------------------------------------------------------
def _sample_in_nsdgeneral(rng, n, margin=6.0):
    """n points spread over the template's nsdgeneral (jittered by ``margin`` mm)."""
    lo, hi = _FOV_BOX
    out = []
    while sum(len(o) for o in out) < n:
        cand = rng.uniform(lo, hi, size=(4096, 3))
        out.append(cand[template_anatomy(cand)["nsdgeneral"]])
    pts = np.concatenate(out)[:n]
    return pts + rng.normal(0.0, margin / np.sqrt(3.0), size=pts.shape)


def latent_covariance() -> np.ndarray:
    """(9, 9) covariance of the standardised latents (category indicators: -1/3)."""
    cov = np.eye(len(LATENTS))
    k = len(CATEGORIES)
    cov[N_LOW:, N_LOW:] = (np.eye(k) * (1 / k) - 1 / k ** 2) / (1 / k - 1 / k ** 2)
    return cov


def _category_gate(points):
    """0 posterior .. 1 anterior ventral: how much a voxel weighs category over low level."""
    y, z = points[:, 1], points[:, 2]
    return _sigmoid((y + 70.0) / 6.0) * _sigmoid((4.0 - z) / 6.0)


class _BumpField:
    """A sum of isotropic Gaussian bumps carrying vector weights."""

    def __init__(self, centres, weights, length_scale):
        self.centres = np.asarray(centres, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.length_scale = np.broadcast_to(np.asarray(length_scale, dtype=np.float64), (len(self.centres),))

    def __call__(self, points):
        d2 = ((points[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return np.exp(-0.5 * d2 / self.length_scale[None] ** 2) @ self.weights


def _random_field(rng, n_bumps, length_scale):
    centres = _sample_in_nsdgeneral(rng, n_bumps)
    weights = rng.standard_normal((n_bumps, len(LATENTS)))
    return _BumpField(centres, weights, length_scale)


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
    return _BumpField(centres, weights, scales)


def _gated(field, points):
    w = field(points)
    g = _category_gate(points)[:, None]
    w[:, :N_LOW] *= 1.0 - 0.9 * g
    w[:, N_LOW:] *= 0.1 + g
    return w


def voxel_weights(points, shared, individual, roi, *, individual_scale):
    """(n, 9) latent weights at anatomical points, scaled to unit response variance."""
    w = _gated(shared, points) + individual_scale * _gated(individual, points) + roi(points)
    var = np.einsum("vk,kl,vl->v", w, latent_covariance(), w)
    return w / np.sqrt(np.maximum(var, 1e-12))[:, None]


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def sample_image_latents(rng, n, *, distractor=0.6, blob_sd=0.12) -> dict[str, np.ndarray]:
    """Latent and nuisance variables of n images.

    ``latents`` (n, 9) float64 standardised (see LATENTS), ``category`` (n,)
    int64 index into CATEGORIES, and the raw parameters the renderer uses.
    ``distractor`` bounds the contrast of a second grating (relative to the
    first) and ``blob_sd`` sets the clutter: nuisance that image features see
    and responses ignore, so features carry the latents only noisily.
    """
    theta = rng.uniform(0.0, np.pi, n)
    log_sf = rng.uniform(np.log(_SF_RANGE[0]), np.log(_SF_RANGE[1]), n)
    lum = rng.standard_normal(n)
    col = rng.standard_normal(n)
    category = rng.integers(0, len(CATEGORIES), n)
    sf_mean = 0.5 * (np.log(_SF_RANGE[0]) + np.log(_SF_RANGE[1]))
    sf_sd = (np.log(_SF_RANGE[1]) - np.log(_SF_RANGE[0])) / np.sqrt(12.0)
    k = len(CATEGORIES)
    onehot = (np.arange(k)[None] == category[:, None]).astype(np.float64)
    latents = np.concatenate([
        np.stack([np.sqrt(2) * np.cos(2 * theta), np.sqrt(2) * np.sin(2 * theta),
                  (log_sf - sf_mean) / sf_sd, lum, col], axis=1),
        (onehot - 1 / k) / np.sqrt(1 / k - 1 / k ** 2),
    ], axis=1)
    return {
        "latents": latents, "category": category.astype(np.int64),
        "theta": theta, "sf": np.exp(log_sf), "luminance": lum, "colour": col,
        # nuisance
        "contrast": rng.uniform(0.12, 0.3, n), "phase": rng.uniform(0, 2 * np.pi, n),
        "tint_by": rng.standard_normal(n), "shift": rng.uniform(-0.15, 0.15, (n, 2)),
        "scale": rng.uniform(0.85, 1.15, n), "fg_colour": rng.uniform(0.0, 1.0, (n, 3)),
        "variant": rng.integers(0, 3, n), "angle": rng.uniform(-0.4, 0.4, n),
        "blob_centre": rng.uniform(-1, 1, (n, 3, 2)), "blob_sd": rng.uniform(0.2, 0.45, (n, 3)),
        "blob_amp": rng.normal(0, blob_sd, (n, 3)), "place": rng.uniform(0, 1, (n, 6)),
        # a second, distractor grating no voxel responds to
        "d_theta": rng.uniform(0.0, np.pi, n),
        "d_sf": np.exp(rng.uniform(np.log(_SF_RANGE[0]), np.log(_SF_RANGE[1]), n)),
        "d_contrast": rng.uniform(0.0, distractor, n), "d_phase": rng.uniform(0, 2 * np.pi, n),
    }


def _alpha(sd, pw):
    """Anti-aliased coverage from a signed distance (negative inside)."""
    return np.clip(0.5 - sd / pw, 0.0, 1.0)


def _ellipse_sd(u, v, a, b):
    return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * min(a, b)


def _segment_sd(u, v, p0, p1, width):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((u - p0[0]) * d[0] + (v - p0[1]) * d[1]) / (d @ d), 0.0, 1.0)
    return np.sqrt((u - p0[0] - t * d[0]) ** 2 + (v - p0[1] - t * d[1]) ** 2) - width


def render_images(params: dict[str, np.ndarray], size: int = 64) -> np.ndarray:
    """Images (n, size, size, 3) uint8 from :func:`sample_image_latents` output."""
    n = len(params["theta"])
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, 256):
        sl = slice(start, min(n, start + 256))
        out[sl] = _render_chunk({k: v[sl] for k, v in params.items()}, size)
    return out


def _render_chunk(p, size):
    n = len(p["theta"])
    pw = 2.0 / size
    coords = (np.arange(size) + 0.5) * pw - 1.0
    v, u = np.meshgrid(coords, coords, indexing="ij")  # v down the rows, u across
    u, v = u[None], v[None]
    col = lambda a: a[:, None, None]  # noqa: E731  (n,) -> (n, 1, 1)

    # background: grating + luminance + clutter, then colour tints
    theta, sf = col(p["theta"]), col(p["sf"])
    lum = 0.5 + 0.1 * col(p["luminance"]) + col(p["contrast"]) * np.sin(
        np.pi * sf * (u * np.cos(theta) + v * np.sin(theta)) + col(p["phase"]))
    dth = col(p["d_theta"])
    lum = lum + col(p["contrast"] * p["d_contrast"]) * np.sin(
        np.pi * col(p["d_sf"]) * (u * np.cos(dth) + v * np.sin(dth)) + col(p["d_phase"]))
    for b in range(p["blob_sd"].shape[1]):
        cu, cv = col(p["blob_centre"][:, b, 0]), col(p["blob_centre"][:, b, 1])
        lum = lum + col(p["blob_amp"][:, b]) * np.exp(
            -0.5 * ((u - cu) ** 2 + (v - cv) ** 2) / col(p["blob_sd"][:, b]) ** 2)
    rg, by = 0.07 * col(p["colour"]), 0.07 * col(p["tint_by"])
    img = np.stack([lum + rg - 0.5 * by, lum - rg - 0.5 * by, lum + by], axis=-1)

    # foreground shape, in object-centred coordinates
    s = col(p["scale"])
    uu = (u - col(p["shift"][:, 0])) / s
    vv = (v - col(p["shift"][:, 1])) / s
    alpha = np.zeros((n, size, size))
    fg = np.zeros((n, size, size, 3))
    cat = p["category"]
    fgc = p["fg_colour"]

    i = np.flatnonzero(cat == 0)  # face-like
    if len(i):
        U, V, pws = uu[i], vv[i], pw / s[i]
        head = _alpha(_ellipse_sd(U, V, 0.42, 0.55), pws)
        feat = np.maximum.reduce([
            _alpha(_ellipse_sd(U - 0.17, V + 0.12, 0.08, 0.06), pws),
            _alpha(_ellipse_sd(U + 0.17, V + 0.12, 0.08, 0.06), pws),
            _alpha(_ellipse_sd(U, V - 0.27, 0.18, 0.045), pws),
            _alpha(_segment_sd(U, V, (0.0, -0.05), (0.0, 0.1), 0.02), pws),
        ])
        skin = np.array([0.85, 0.66, 0.52]) + 0.15 * (fgc[i] - 0.5)
        fg[i] = skin[:, None, None] * (1 - feat[..., None]) + 0.12 * feat[..., None]
        alpha[i] = head

    i = np.flatnonzero(cat == 1)  # body-like
    if len(i):
        U, V, pws = uu[i], vv[i], pw / s[i]
        a = col(p["angle"][i])
        head = _alpha(_ellipse_sd(U, V + 0.58, 0.13, 0.14), pws)
        parts = [_segment_sd(U, V, (0, -0.38), (0, 0.1), 0.15)]
        for side in (-1, 1):
            parts.append(_segment_sd(U, V, (0.08 * side, 0.1), (0.2 * side, 0.72), 0.065))
            hand_u = side * (0.15 + 0.3 * np.cos(a))
            hand_v = -0.33 + 0.3 * np.sin(a + 0.6)
            parts.append(_segment_sd_var(U, V, (0.14 * side, -0.33), (hand_u, hand_v), 0.055))
        torso = _alpha(np.minimum.reduce(parts), pws)
        cloth = fgc[i][:, None, None] * 0.8 + 0.1
        skin = np.array([0.85, 0.66, 0.52])
        fg[i] = cloth * torso[..., None] + skin * (1 - torso[..., None])
        alpha[i] = np.maximum(head, torso)

    i = np.flatnonzero(cat == 2)  # place-like: ground plane, buildings, perspective
    if len(i):
        U, V, pwi = u, v, pw
        q = p["place"][i]
        h = col(-0.1 + 0.3 * q[:, 0])
        vx = col(q[:, 1] - 0.5)
        ground = _alpha(h - V, pwi) * np.ones((len(i), 1, 1))
        stripes = 0.5 + 0.5 * np.sin(10.0 * np.arctan2(U - vx, np.maximum(V - h, 1e-3)))
        gcol = np.array([0.42, 0.38, 0.3]) * (0.75 + 0.25 * stripes[..., None])
        bcol = np.zeros((len(i), size, size, 3))
        build = np.zeros((len(i), size, size))
        for b, (cx, w, ht) in enumerate([(q[:, 2] * 0.8 - 0.6, 0.35, q[:, 3]), (q[:, 4] * 0.8 - 0.2, 0.3, q[:, 5])]):
            cx, ht = col(cx), col(0.3 + 0.4 * ht)
            sd = np.maximum(np.abs(U - cx) - w / 2, np.abs(V - (h - ht / 2)) - ht / 2)
            a_b = _alpha(sd, pwi)
            windows = (np.sin(2 * np.pi * (U - cx) / 0.12) * np.sin(2 * np.pi * V / 0.12) > 0.35)
            shade = 0.55 + 0.25 * b - 0.3 * windows
            bcol = bcol * (1 - a_b[..., None]) + a_b[..., None] * shade[..., None] * np.array([0.95, 0.9, 0.85])
            build = np.maximum(build, a_b)
        fg[i] = gcol * ground[..., None] * (1 - build[..., None]) + bcol
        alpha[i] = np.maximum(ground, build)
        fg[i] = np.where(alpha[i][..., None] > 0, fg[i] / np.maximum(alpha[i][..., None], 1e-6), 0.0)

    i = np.flatnonzero(cat == 3)  # object: a disk, a tilted square or a triangle
    if len(i):
        U, V, pws = uu[i], vv[i], pw / s[i]
        a = col(p["angle"][i] * 2)
        var = col(p["variant"][i])
        disk = np.sqrt(U ** 2 + V ** 2) - 0.34
        ur, vr = U * np.cos(a) + V * np.sin(a), -U * np.sin(a) + V * np.cos(a)
        square = np.maximum(np.abs(ur), np.abs(vr)) - 0.28
        normals = [np.pi / 2 + 2 * np.pi * k / 3 for k in range(3)]
        tri = np.max([ur * np.cos(t) + vr * np.sin(t) for t in normals], axis=0) - 0.2
        sd = np.where(var == 0, disk, np.where(var == 1, square, tri))
        alpha[i] = _alpha(sd, pws)
        hue = fgc[i]
        sat = hue / np.maximum(hue.max(1, keepdims=True), 1e-6)
        fg[i] = (0.15 + 0.8 * sat)[:, None, None] * np.ones((1, size, size, 1))

    img = img * (1 - alpha[..., None]) + fg * alpha[..., None]
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _segment_sd_var(u, v, p0, p1, width):
    """Segment distance where p1 may be per-image arrays (n, 1, 1)."""
    x0, y0 = p0
    x1, y1 = p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2) - width


# ---------------------------------------------------------------------------
# Subjects: grids, registration, anatomy
# ---------------------------------------------------------------------------
def _rotation(angles):
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def subject_geometry(seed: int, subject: str, *, voxel_size_range=(4.0, 4.6), registration_error_mm=3.0) -> dict:
    """A subject's func grid and its map to MNI.

    Returns ``shape`` (X, Y, Z), ``affine`` (4, 4) native mm, ``voxel_size``,
    ``mni`` (X, Y, Z, 3) reported MNI mm of every grid voxel, and ``anat``
    (X, Y, Z, 3) the template position that voxel's anatomy and response
    come from (``mni`` + a smooth registration error).
    """
    number = ALL_SUBJECTS.index(subject) + 1
    rng = _rng(seed, _SUBJECT, number, 0)
    vs = rng.uniform(*voxel_size_range)
    scale = rng.uniform(0.97, 1.03)  # native brain size relative to the template
    rot = _rotation(np.deg2rad(rng.normal(0.0, 3.0, 3)))
    shift = rng.normal(0.0, 2.0, 3)
    native_origin = rng.uniform(-60, 60, 3)  # arbitrary scanner-space placement
    # MNI = rot @ (native - native_origin) / scale + shift
    lo, hi = _FOV_BOX[0] - _FOV_MARGIN, _FOV_BOX[1] + _FOV_MARGIN
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    native_corners = (corners - shift) @ rot * scale + native_origin
    n_lo = native_corners.min(0) - rng.uniform(0, vs, 3)
    shape = tuple(int(s) for s in np.ceil((native_corners.max(0) - n_lo) / vs) + 1)
    affine = np.eye(4)
    affine[:3, :3] *= vs
    affine[:3, 3] = n_lo
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    native = n_lo + vs * ijk
    mni = ((native - native_origin) / scale) @ rot.T + shift
    # registration error: a smooth field, ~registration_error_mm RMS over nsdgeneral
    erng = _rng(seed, _SUBJECT, number, 1)
    err_field = _BumpField(_sample_in_nsdgeneral(erng, 40, margin=20.0), erng.standard_normal((40, 3)), 25.0)
    ref = err_field(_sample_in_nsdgeneral(_rng(seed, _SUBJECT, number, 2), 2000, margin=0.0))
    err = err_field(mni) * registration_error_mm / np.sqrt((ref ** 2).sum(1).mean())
    return {
        "shape": shape, "affine": affine, "voxel_size": float(vs), "scale": float(scale),
        "mni": mni.reshape(*shape, 3), "anat": (mni + err).reshape(*shape, 3),
    }


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


# ---------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------
def simulate_nsd_tree(
    root,
    *,
    subjects=("subj01", "subj02", "subj05", "subj07"),
    n_train_images: int = 1000,
    n_test_images: int = 100,
    repeats: int = 3,
    trials_per_session: int = 300,
    image_size: int = 64,
    seed: int = 0,
    hdf5_twins: bool = False,
    n_bumps: int = 80,
    length_scale_mm: float = 12.0,
    individual_scale: float = 0.3,
    roi_amplitude: float = 2.5,
    registration_error_mm: float = 3.0,
    voxel_size_range: tuple[float, float] = (4.0, 4.6),
    ncsnr_median: float = 0.35,
    ncsnr_spread: float = 0.25,
    outside_ncsnr_factor: float = 0.5,
    drift_offset_sd: float = 1.0,
    drift_gain_sd: float = 0.2,
    amplitude_median: float = 1.0,
    trial_noise_sd: float = 1.0,
    image_distractor: float = 0.6,
    image_clutter: float = 0.12,
) -> dict:
    """Write a simulated NSD tree under ``root``; return a summary.

    Parameters
    ----------
    root : folder the NSD keys are written under (created if missing).
    subjects : names among subj01..subj08; each gets its own func grid.
    n_train_images, n_test_images : images per subject; the test images are
        shared by all subjects (the first columns of ``subjectim``), the
        training images are distinct across subjects.
    repeats : presentations of every image; ``masterordering`` has
        ``(n_train_images + n_test_images) * repeats`` trials, one ordering
        for all subjects; entries <= n_test_images are test trials. Rows of
        ``subjectim`` for subjects not simulated hold valid ids that repeat
        simulated subjects' training images (never read them as data).
    trials_per_session : must divide the number of trials.
    image_size : side of the square procedural images (``imgBrick``).
    seed : every random draw comes from named streams of this seed.
    hdf5_twins : also write each session's ``.hdf5`` twin, ``/betas``
        (T, Z, Y, X) int16, chunked one voxel per chunk.
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
        grating's maximum relative contrast; the SD of background blobs): the
        larger, the more noisily image features carry the latents.

    Returns
    -------
    dict with ``root``, ``n_images`` (the "73k" space), ``n_trials``,
    ``n_sessions``, ``test_ids`` and per subject ``subjects[s]`` =
    {grid_shape, voxel_size, n_brainmask, n_voxels (brainmask ∩ nsdgeneral),
    roi_counts}.
    """
    root = Path(root)
    subjects = _check_subjects(subjects)
    if n_test_images < 1 or n_train_images < 1 or repeats < 1:
        raise ValueError(f"need at least one training and one test image and one repeat, got "
                         f"n_train_images={n_train_images}, n_test_images={n_test_images}, repeats={repeats}")
    n_img = n_train_images + n_test_images
    n_trials = n_img * repeats
    if n_trials % trials_per_session:
        raise ValueError(
            f"{n_trials} trials ({n_img} images x {repeats} repeats) do not split into sessions of "
            f"{trials_per_session}; choose trials_per_session dividing {n_trials}")
    n_sessions = n_trials // trials_per_session

    # --- images and design -------------------------------------------------
    n_total = n_test_images + len(subjects) * n_train_images
    params = sample_image_latents(_rng(seed, _IMAGES), n_total, distractor=image_distractor,
                                  blob_sd=image_clutter)
    drng = _rng(seed, _DESIGN)
    perm = drng.permutation(n_total)
    test_ids = np.sort(perm[:n_test_images])
    train_ids = {s: np.sort(perm[n_test_images + k * n_train_images: n_test_images + (k + 1) * n_train_images])
                 for k, s in enumerate(subjects)}
    subjectim = np.zeros((8, n_img), np.int64)
    other_pool = np.sort(perm[n_test_images:])
    for row, s in enumerate(ALL_SUBJECTS):
        ids = train_ids.get(s)
        if ids is None:  # not simulated: valid ids, but shared with simulated subjects
            ids = np.sort(drng.choice(other_pool, n_train_images, replace=len(other_pool) < n_train_images))
        subjectim[row] = np.concatenate([test_ids, ids])
    masterordering = _rng(seed, _DESIGN, 1).permutation(np.repeat(np.arange(1, n_img + 1), repeats))

    _save_mat({
        "masterordering": masterordering[None].astype(np.int32),
        "subjectim": (subjectim + 1).astype(np.int32),
        "sharedix": (test_ids[None] + 1).astype(np.int32),
    }, root / nsd_layout.EXPDESIGN)
    _write_stim_info(root / nsd_layout.STIM_INFO, n_total, test_ids, subjectim, masterordering, repeats)
    images = render_images(params, image_size)
    with _H5Writer(root / nsd_layout.STIMULI) as f:
        _dataset(f, "imgBrick", images, chunks=(1, image_size, image_size, 3), compression="gzip",
                 compression_opts=4)
    with _H5Writer(root / "simulation" / "image_latents.hdf5") as f:
        _dataset(f, "latents", params["latents"].astype(np.float32))
        _dataset(f, "category", params["category"])
        f.attrs["latent_names"] = np.array(LATENTS, dtype="S")
        f.attrs["categories"] = np.array(CATEGORIES, dtype="S")
        f.attrs["n_low_level"] = N_LOW

    # --- the field ---------------------------------------------------------
    frng = _rng(seed, _FIELD)
    shared = _random_field(frng, n_bumps, length_scale_mm)
    ncsnr_field = _BumpField(_sample_in_nsdgeneral(frng, n_bumps, margin=10.0),
                             frng.standard_normal((n_bumps, 1)), 2 * length_scale_mm)
    ncsnr_ref = ncsnr_field(_sample_in_nsdgeneral(frng, 2000, margin=0.0))[:, 0].std()
    roi = _roi_field(roi_amplitude)

    summary = {"root": str(root), "n_images": int(n_total), "n_trials": int(n_trials),
               "n_sessions": int(n_sessions), "trials_per_session": int(trials_per_session),
               "test_ids": test_ids.tolist(), "subjects": {}}
    for s in subjects:
        number = ALL_SUBJECTS.index(s) + 1
        geo = subject_geometry(seed, s, voxel_size_range=voxel_size_range,
                               registration_error_mm=registration_error_mm)
        individual = _random_field(_rng(seed, _SUBJECT, number, 3), n_bumps, length_scale_mm)
        summary["subjects"][s] = _write_subject(
            root, s, geo, subjectim[number - 1], masterordering, params["latents"],
            shared=shared, individual=individual, roi=roi, individual_scale=individual_scale,
            ncsnr_field=ncsnr_field, ncsnr_ref=ncsnr_ref, ncsnr_median=ncsnr_median,
            ncsnr_spread=ncsnr_spread, outside_ncsnr_factor=outside_ncsnr_factor,
            drift_offset_sd=drift_offset_sd, drift_gain_sd=drift_gain_sd,
            amplitude_median=amplitude_median, trial_noise_sd=trial_noise_sd, trials_per_session=trials_per_session,
            n_sessions=n_sessions, hdf5_twins=hdf5_twins, rng=_rng(seed, _SUBJECT, number, 4))

    parameters = dict(
        subjects=list(subjects), n_train_images=n_train_images, n_test_images=n_test_images,
        repeats=repeats, trials_per_session=trials_per_session, image_size=image_size, seed=seed,
        hdf5_twins=hdf5_twins, n_bumps=n_bumps, length_scale_mm=length_scale_mm,
        individual_scale=individual_scale, roi_amplitude=roi_amplitude,
        registration_error_mm=registration_error_mm, voxel_size_range=list(voxel_size_range),
        ncsnr_median=ncsnr_median, ncsnr_spread=ncsnr_spread, outside_ncsnr_factor=outside_ncsnr_factor,
        drift_offset_sd=drift_offset_sd, drift_gain_sd=drift_gain_sd, amplitude_median=amplitude_median,
        trial_noise_sd=trial_noise_sd, image_distractor=image_distractor, image_clutter=image_clutter,
    )
    (root / "simulation").mkdir(parents=True, exist_ok=True)
    (root / "simulation" / "parameters.json").write_text(
        json.dumps({"parameters": parameters, "summary": {k: v for k, v in summary.items() if k != "root"}},
                   indent=1, sort_keys=True) + "\n")
    return summary


def _check_subjects(subjects):
    if isinstance(subjects, str):
        subjects = [subjects]
    subjects = list(subjects)
    bad = [s for s in subjects if s not in ALL_SUBJECTS]
    if bad or not subjects or len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects must be distinct names among {ALL_SUBJECTS}, got {subjects}")
    return sorted(subjects)


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


def _write_subject(root, s, geo, subject_ids, masterordering, latents, *, shared, individual, roi,
                   individual_scale, ncsnr_field, ncsnr_ref, ncsnr_median, ncsnr_spread,
                   outside_ncsnr_factor, drift_offset_sd, drift_gain_sd, amplitude_median,
                   trial_noise_sd, trials_per_session, n_sessions, hdf5_twins, rng):
    shape, affine = geo["shape"], geo["affine"]
    mni = geo["mni"].reshape(-1, 3)
    anat_pts = geo["anat"].reshape(-1, 3)
    lo, hi = _FOV_BOX[0] - _FOV_MARGIN, _FOV_BOX[1] + _FOV_MARGIN
    anat = template_anatomy(anat_pts)
    brain = anat["brain"] & np.all((mni >= lo) & (mni <= hi), axis=1)
    nsdgen = anat["nsdgeneral"] & brain
    head = ((mni - _HEAD_CENTRE) / _HEAD_RADII) ** 2
    head = head.sum(1) < 1.0

    # volumes that describe the grid
    _save_nifti(brain.reshape(shape).astype(np.uint8), affine, root / nsd_layout.brainmask(s))
    ng = np.where(brain, nsdgen.astype(np.int16), np.int16(-1))
    _save_nifti(ng.reshape(shape), affine, root / nsd_layout.roi(s, "nsdgeneral"))
    roi_counts = {}
    for atlas, names in nsd_layout.ROI_ATLASES.items():
        lab = np.where(brain, anat[atlas], np.int16(-1)).astype(np.int16)
        _save_nifti(lab.reshape(shape), affine, root / nsd_layout.roi(s, atlas))
        roi_counts[atlas] = {name: int(((lab == k) & nsdgen).sum()) for k, name in names.items()}
    transform = nsd_layout.transform_index_from_mni(mni) + 1.0
    transform[~head] = nsd_layout.TRANSFORM_INVALID
    _save_nifti(transform.reshape(*shape, 3).astype(np.float32), affine, root / nsd_layout.mni_transform(s))

    # responses at brainmask voxels (C-order of the grid)
    bidx = np.flatnonzero(brain)
    w = voxel_weights(anat_pts[bidx], shared, individual, roi, individual_scale=individual_scale)
    smooth = ncsnr_field(anat_pts[bidx])[:, 0] / ncsnr_ref
    ncsnr = ncsnr_median * np.exp(ncsnr_spread * smooth + 0.1 * rng.standard_normal(len(bidx)))
    in_ng = nsdgen[bidx]
    ncsnr[~in_ng] *= outside_ncsnr_factor
    vol = np.zeros(len(mni), np.float32)
    vol[bidx] = ncsnr
    _save_nifti(vol.reshape(shape), affine, root / nsd_layout.ncsnr(s))

    amp = amplitude_median * np.exp(0.3 * rng.standard_normal(len(bidx)))
    z = latents[subject_ids]  # (n_img, 9), rows in the subject's image order
    resp = (z @ w.T).astype(np.float32)  # (n_img, n_brainmask)

    # ground truth at brainmask ∩ nsdgeneral
    order = np.argsort(subject_ids)
    ijk = np.stack(np.unravel_index(bidx[in_ng], shape), axis=1)
    with _H5Writer(root / "simulation" / f"{s}_noiseless.hdf5") as f:
        _dataset(f, "image_ids", subject_ids[order].astype(np.int64))
        _dataset(f, "responses", resp[order][:, in_ng])
        _dataset(f, "voxel_ijk", ijk.astype(np.int32))
        _dataset(f, "mni", mni[bidx[in_ng]].astype(np.float32))
        _dataset(f, "anat", anat_pts[bidx[in_ng]].astype(np.float32))
        _dataset(f, "weights", w[in_ng].astype(np.float32))
        _dataset(f, "ncsnr", ncsnr[in_ng].astype(np.float32))
        _dataset(f, "amplitude", amp[in_ng].astype(np.float32))
        f.attrs["subject"] = s
        f.attrs["latent_names"] = np.array(LATENTS, dtype="S")

    # measured betas, session by session
    n_vox = len(bidx)
    scale = nsd_layout.BETA_SCALE
    for sess in range(n_sessions):
        t = slice(sess * trials_per_session, (sess + 1) * trials_per_session)
        cols = masterordering[t] - 1
        gain = np.exp(drift_gain_sd * rng.standard_normal(n_vox))
        offset = drift_offset_sd * (rng.standard_normal(n_vox) + 0.5 * rng.standard_normal())
        noise = rng.standard_normal((trials_per_session, n_vox), dtype=np.float32)
        beta = amp * (gain * (ncsnr * resp[cols] + trial_noise_sd * noise) + offset)
        b16 = np.clip(np.rint(beta * scale), -32768, 32767).astype(np.int16)
        full = np.zeros((len(mni), trials_per_session), np.int16)
        full[bidx] = b16.T
        _save_nifti(full.reshape(*shape, trials_per_session), affine, root / nsd_layout.betas(s, sess + 1))
        if hdf5_twins:
            _write_betas_twin(root / nsd_layout.betas(s, sess + 1, "hdf5"), b16, bidx, shape)
    return {
        "grid_shape": [int(x) for x in shape], "voxel_size": geo["voxel_size"],
        "n_brainmask": int(brain.sum()), "n_voxels": int(nsdgen.sum()), "n_sessions": int(n_sessions),
        "roi_counts": roi_counts,
    }


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
