"""The simulator's images: latent factors per image and a procedural renderer.

An image is drawn from five low-level latents (grating orientation as cos 2θ
and sin 2θ, log spatial frequency, luminance, red-green colour) and one
category of four (face-like, body-like, place-like, object), plus nuisance
variables a response ignores but an image feature sees (grating contrast and
phase, a distractor grating, blue-yellow tint, background clutter, the
shape's position, size and colour), so image features carry the latents only
noisily. :func:`render_images` paints the background, then one small function
per category paints its foreground.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = ("face", "body", "place", "object")
LOW_LEVEL_LATENTS = ("orientation_cos", "orientation_sin", "spatial_frequency", "luminance", "colour_rg")
LATENTS = LOW_LEVEL_LATENTS + tuple(f"category_{c}" for c in CATEGORIES)
N_LOW = len(LOW_LEVEL_LATENTS)

# the spatial frequency latent: log-uniform cycles per image
SF_RANGE = (1.5, 8.0)
_SKIN = np.array([0.85, 0.66, 0.52])


def latent_covariance() -> np.ndarray:
    """(9, 9) covariance of the standardised latents (category indicators: -1/3)."""
    cov = np.eye(len(LATENTS))
    k = len(CATEGORIES)
    cov[N_LOW:, N_LOW:] = (np.eye(k) * (1 / k) - 1 / k ** 2) / (1 / k - 1 / k ** 2)
    return cov


def sample_image_latents(rng, n, *, distractor=0.6, blob_sd=0.12) -> dict[str, np.ndarray]:
    """Latent and nuisance variables of n images.

    ``latents`` (n, 9) float64 standardised (see LATENTS), ``category`` (n,)
    int64 index into CATEGORIES, and the raw parameters the renderer uses.
    ``distractor`` bounds the contrast of a second grating (relative to the
    first) and ``blob_sd`` sets the clutter: nuisance that image features see
    and responses ignore, so features carry the latents only noisily.
    """
    theta = rng.uniform(0.0, np.pi, n)
    log_sf = rng.uniform(np.log(SF_RANGE[0]), np.log(SF_RANGE[1]), n)
    lum = rng.standard_normal(n)
    col = rng.standard_normal(n)
    category = rng.integers(0, len(CATEGORIES), n)
    sf_mean = 0.5 * (np.log(SF_RANGE[0]) + np.log(SF_RANGE[1]))
    sf_sd = (np.log(SF_RANGE[1]) - np.log(SF_RANGE[0])) / np.sqrt(12.0)
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
        "d_sf": np.exp(rng.uniform(np.log(SF_RANGE[0]), np.log(SF_RANGE[1]), n)),
        "d_contrast": rng.uniform(0.0, distractor, n), "d_phase": rng.uniform(0, 2 * np.pi, n),
    }


def render_images(params: dict[str, np.ndarray], size: int = 64) -> np.ndarray:
    """Images (n, size, size, 3) uint8 from :func:`sample_image_latents` output."""
    n = len(params["theta"])
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, 256):
        sl = slice(start, min(n, start + 256))
        out[sl] = _render_chunk({k: v[sl] for k, v in params.items()}, size)
    return out


# ---------------------------------------------------------------------------
# Signed distances (negative inside) and coverage
# ---------------------------------------------------------------------------
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


def _segment_sd_var(u, v, p0, p1, width):
    """Segment distance where p1 may be per-image arrays (n, 1, 1)."""
    x0, y0 = p0
    x1, y1 = p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2) - width


def _col(a):
    """(n,) -> (n, 1, 1), to broadcast a per-image value over pixels."""
    return a[:, None, None]


# ---------------------------------------------------------------------------
# Background and one foreground painter per category
# ---------------------------------------------------------------------------
def _background(p, u, v):
    """(n, H, W, 3): grating + luminance + distractor + clutter, then colour tints."""
    theta, sf = _col(p["theta"]), _col(p["sf"])
    lum = 0.5 + 0.1 * _col(p["luminance"]) + _col(p["contrast"]) * np.sin(
        np.pi * sf * (u * np.cos(theta) + v * np.sin(theta)) + _col(p["phase"]))
    dth = _col(p["d_theta"])
    lum = lum + _col(p["contrast"] * p["d_contrast"]) * np.sin(
        np.pi * _col(p["d_sf"]) * (u * np.cos(dth) + v * np.sin(dth)) + _col(p["d_phase"]))
    for b in range(p["blob_sd"].shape[1]):
        cu, cv = _col(p["blob_centre"][:, b, 0]), _col(p["blob_centre"][:, b, 1])
        lum = lum + _col(p["blob_amp"][:, b]) * np.exp(
            -0.5 * ((u - cu) ** 2 + (v - cv) ** 2) / _col(p["blob_sd"][:, b]) ** 2)
    rg, by = 0.07 * _col(p["colour"]), 0.07 * _col(p["tint_by"])
    return np.stack([lum + rg - 0.5 * by, lum - rg - 0.5 * by, lum + by], axis=-1)


def _paint_face(p, U, V, pws, u, v, pw):
    """A head ellipse with two eyes, a mouth and a nose; returns (colour (n, H, W, 3), alpha (n, H, W))."""
    head = _alpha(_ellipse_sd(U, V, 0.42, 0.55), pws)
    feat = np.maximum.reduce([
        _alpha(_ellipse_sd(U - 0.17, V + 0.12, 0.08, 0.06), pws),
        _alpha(_ellipse_sd(U + 0.17, V + 0.12, 0.08, 0.06), pws),
        _alpha(_ellipse_sd(U, V - 0.27, 0.18, 0.045), pws),
        _alpha(_segment_sd(U, V, (0.0, -0.05), (0.0, 0.1), 0.02), pws),
    ])
    skin = _SKIN + 0.15 * (p["fg_colour"] - 0.5)
    return skin[:, None, None] * (1 - feat[..., None]) + 0.12 * feat[..., None], head


def _paint_body(p, U, V, pws, u, v, pw):
    """A head, torso, legs and arms posed by ``angle``, in clothes of ``fg_colour``."""
    a = _col(p["angle"])
    head = _alpha(_ellipse_sd(U, V + 0.58, 0.13, 0.14), pws)
    parts = [_segment_sd(U, V, (0, -0.38), (0, 0.1), 0.15)]
    for side in (-1, 1):
        parts.append(_segment_sd(U, V, (0.08 * side, 0.1), (0.2 * side, 0.72), 0.065))
        hand_u = side * (0.15 + 0.3 * np.cos(a))
        hand_v = -0.33 + 0.3 * np.sin(a + 0.6)
        parts.append(_segment_sd_var(U, V, (0.14 * side, -0.33), (hand_u, hand_v), 0.055))
    torso = _alpha(np.minimum.reduce(parts), pws)
    cloth = p["fg_colour"][:, None, None] * 0.8 + 0.1
    fg = cloth * torso[..., None] + _SKIN * (1 - torso[..., None])
    return fg, np.maximum(head, torso)


def _paint_place(p, U, V, pws, u, v, pw):
    """A ground plane in perspective and two buildings with windows, in image (not object) coordinates."""
    n, size = len(p["place"]), u.shape[-1]
    q = p["place"]
    h = _col(-0.1 + 0.3 * q[:, 0])
    vx = _col(q[:, 1] - 0.5)
    ground = _alpha(h - v, pw) * np.ones((n, 1, 1))
    stripes = 0.5 + 0.5 * np.sin(10.0 * np.arctan2(u - vx, np.maximum(v - h, 1e-3)))
    gcol = np.array([0.42, 0.38, 0.3]) * (0.75 + 0.25 * stripes[..., None])
    bcol = np.zeros((n, size, size, 3))
    build = np.zeros((n, size, size))
    for b, (cx, w, ht) in enumerate([(q[:, 2] * 0.8 - 0.6, 0.35, q[:, 3]), (q[:, 4] * 0.8 - 0.2, 0.3, q[:, 5])]):
        cx, ht = _col(cx), _col(0.3 + 0.4 * ht)
        sd = np.maximum(np.abs(u - cx) - w / 2, np.abs(v - (h - ht / 2)) - ht / 2)
        a_b = _alpha(sd, pw)
        windows = (np.sin(2 * np.pi * (u - cx) / 0.12) * np.sin(2 * np.pi * v / 0.12) > 0.35)
        shade = 0.55 + 0.25 * b - 0.3 * windows
        bcol = bcol * (1 - a_b[..., None]) + a_b[..., None] * shade[..., None] * np.array([0.95, 0.9, 0.85])
        build = np.maximum(build, a_b)
    fg = gcol * ground[..., None] * (1 - build[..., None]) + bcol
    alpha = np.maximum(ground, build)
    # un-premultiply: the caller composites fg * alpha
    fg = np.where(alpha[..., None] > 0, fg / np.maximum(alpha[..., None], 1e-6), 0.0)
    return fg, alpha


def _paint_object(p, U, V, pws, u, v, pw):
    """A disk, a tilted square or a triangle (``variant``) in a saturated ``fg_colour``."""
    size = u.shape[-1]
    a = _col(p["angle"] * 2)
    var = _col(p["variant"])
    disk = np.sqrt(U ** 2 + V ** 2) - 0.34
    ur, vr = U * np.cos(a) + V * np.sin(a), -U * np.sin(a) + V * np.cos(a)
    square = np.maximum(np.abs(ur), np.abs(vr)) - 0.28
    normals = [np.pi / 2 + 2 * np.pi * k / 3 for k in range(3)]
    tri = np.max([ur * np.cos(t) + vr * np.sin(t) for t in normals], axis=0) - 0.2
    sd = np.where(var == 0, disk, np.where(var == 1, square, tri))
    hue = p["fg_colour"]
    sat = hue / np.maximum(hue.max(1, keepdims=True), 1e-6)
    return (0.15 + 0.8 * sat)[:, None, None] * np.ones((1, size, size, 1)), _alpha(sd, pws)


# in CATEGORIES' order
_PAINTERS = (_paint_face, _paint_body, _paint_place, _paint_object)


def _render_chunk(p, size):
    """Background, then each category's foreground composited over it: (n, size, size, 3) uint8."""
    n = len(p["theta"])
    pw = 2.0 / size  # one pixel in image units ([-1, 1] across)
    coords = (np.arange(size) + 0.5) * pw - 1.0
    v, u = np.meshgrid(coords, coords, indexing="ij")  # v down the rows, u across
    u, v = u[None], v[None]
    img = _background(p, u, v)
    # the foreground shape, in object-centred coordinates
    s = _col(p["scale"])
    uu = (u - _col(p["shift"][:, 0])) / s
    vv = (v - _col(p["shift"][:, 1])) / s
    alpha = np.zeros((n, size, size))
    fg = np.zeros((n, size, size, 3))
    for cat, paint in enumerate(_PAINTERS):
        i = np.flatnonzero(p["category"] == cat)
        if len(i):
            sub = {k: val[i] for k, val in p.items()}
            fg[i], alpha[i] = paint(sub, uu[i], vv[i], pw / s[i], u, v, pw)
    img = img * (1 - alpha[..., None]) + fg * alpha[..., None]
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
