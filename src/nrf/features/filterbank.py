"""A weight-free image block: fixed Gabor and colour filters, pooled on a patch grid.

The simulated default's stand-in for CLIP (``nrf.features.base``): nothing is
learned or downloaded, every number follows from the constructor's arguments,
and one core turns thousands of 64 x 64 images into features in seconds.

Stage 1 (``tokens_shallow``): the luminance image is filtered by a bank of
complex Gabor filters (``n_orientations`` x ``wavelengths``, in the Fourier
domain, reflect-padded); the local energy (modulus) of each, plus the mean
luminance, red-green and blue-yellow colour and the luminance contrast, is
averaged over each patch of a ``grid`` x ``grid`` grid.

Stage 2 (``tokens_deep``): the stage-1 energies, 4x downsampled, are
divisively normalised across channels and, together with their log and the
colour maps, filtered by a fixed random 5 x 5 convolution (seeded), fully
rectified and averaged over the same patch grid: features of the local
configuration of orientations, scales and colours (shape parts, textures).

``embedding``: both stages averaged over the whole image and over a 2 x 2
grid, concatenated: ``5 * 2 * token_dim`` values.

Both token grids are (n, grid**2, token_dim) with
``token_dim = n_orientations * len(wavelengths) + 4``; all outputs float32
and log-compressed to O(1) values, not standardised (an image's features
never depend on the other images in its batch).

fWRF's layer maps (``maps/<layer>``, AlexNet's conv1..conv5 on NSD): the two
stages again, each pooled on grids of several resolutions, fine to coarse, so
fWRF runs the same multi-layer code on the simulator as on NSD. At the
default grid 4: ``s1_16``, ``s1_8``, ``s1_4`` (stage 1 on 16², 8², 4² grids),
``s2_8``, ``s2_4`` (stage 2 on 8², 4²); ``s1_4`` and ``s2_4`` equal
``tokens_shallow`` and ``tokens_deep``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nrf.features.base import Extractor, map_key


class FilterBankExtractor(Extractor):
    """Fixed Gabor/colour filter bank with a second, random-but-fixed nonlinear stage.

    Parameters
    ----------
    grid : patches per side of the token grid (n_tokens = grid**2).
    n_orientations : Gabor orientations, evenly spaced over 180 degrees.
    wavelengths : Gabor wavelengths in pixels of the working image.
    work_size : images are resized (antialiased bilinear) to this square size.
    pad : reflect padding (pixels) before the Fourier-domain filtering.
    bandwidth : radial standard deviation of each filter as a fraction of its
        centre frequency (0.35 is about one octave).
    deep_kernel : size of the second stage's convolution.
    seed : seeds the second stage's fixed random filters.
    batch_size : images processed at once (bounds memory).
    """

    name = "filterbank"
    layers = (1, 2)

    def __init__(self, *, grid: int = 4, n_orientations: int = 4,
                 wavelengths: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0), work_size: int = 64,
                 pad: int = 16, bandwidth: float = 0.35, deep_kernel: int = 5, seed: int = 0,
                 batch_size: int = 128):
        if (work_size // 4) % grid or work_size % 4:
            raise ValueError(f"work_size {work_size} must be divisible by 4 * grid ({4 * grid})")
        self.grid = int(grid)
        self.n_orientations = int(n_orientations)
        self.wavelengths = tuple(float(w) for w in wavelengths)
        self.work_size = int(work_size)
        self.pad = int(pad)
        self.bandwidth = float(bandwidth)
        self.deep_kernel = int(deep_kernel)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.n_filters = self.n_orientations * len(self.wavelengths)
        self.token_dim = self.n_filters + 4
        self.n_tokens = self.grid ** 2
        self.embedding_dim = 10 * self.token_dim
        self._banks = self._gabor_banks()
        g = torch.Generator().manual_seed(self.seed)
        c_in = 2 * self.n_filters + 3
        k = self.deep_kernel
        self._deep_w = torch.randn(self.token_dim, c_in, k, k, generator=g) / np.sqrt(c_in * k * k)
        # fWRF's maps, fine to coarse: stage 1 at 4x, 2x and 1x the grid, stage 2 at 2x and 1x
        self.map_grids = {f"s1_{m * grid}": (1, m * grid) for m in (4, 2, 1)}
        self.map_grids.update({f"s2_{m * grid}": (2, m * grid) for m in (2, 1)})
        self.map_layers = tuple(self.map_grids)

    def __repr__(self):
        return (f"FilterBankExtractor(grid={self.grid}, n_orientations={self.n_orientations}, "
                f"wavelengths={self.wavelengths}, work_size={self.work_size}, seed={self.seed})")

    def _levels(self):
        """Filters grouped by pyramid level: a wavelength of lam pixels is applied to the
        image downsampled by d (a power of two, lam / d >= 4 pixels per cycle)."""
        S = self.work_size
        levels = {}
        for lam in self.wavelengths:
            d = 1
            while lam / (2 * d) >= 4.0 and (S // (2 * d)) % self.grid == 0 and S // (2 * d) >= 2 * self.grid:
                d *= 2
            levels.setdefault(d, []).append(lam / d)
        return levels

    def _gabor_banks(self):
        """{d: (n_filters_d, P_d, P_d) complex64 transfer functions}: one-sided
        Gabor filters, ordered by wavelength then orientation."""
        banks = {}
        for d, lams in sorted(self._levels().items()):
            size = self.work_size // d + 2 * self._pad(d)
            f = np.fft.fftfreq(size)
            fy, fx = np.meshgrid(f, f, indexing="ij")
            bank = []
            for lam in lams:
                f0 = 1.0 / lam
                sd = self.bandwidth * f0
                for o in range(self.n_orientations):
                    th = np.pi * o / self.n_orientations
                    cx, cy = f0 * np.cos(th), f0 * np.sin(th)
                    # x 2: a grating of amplitude A at the centre frequency gives energy A
                    bank.append(2.0 * np.exp(-0.5 * ((fx - cx) ** 2 + (fy - cy) ** 2) / sd ** 2))
            banks[d] = torch.from_numpy(np.stack(bank).astype(np.complex64))
        return banks

    def _pad(self, d):
        return max(4, self.pad // d)

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Features of images (n, H, W, 3) uint8; see the module docstring for shapes."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (n, H, W, 3), got {images.shape}")
        out = {}
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                feats = self._extract_batch(images[start:start + self.batch_size])
                for k, v in feats.items():
                    out.setdefault(k, []).append(v)
        if not len(images):
            return {
                "tokens_shallow": np.zeros((0, self.n_tokens, self.token_dim), np.float32),
                "tokens_deep": np.zeros((0, self.n_tokens, self.token_dim), np.float32),
                "embedding": np.zeros((0, self.embedding_dim), np.float32),
                **{map_key(layer): np.zeros((0, g * g, self.token_dim), np.float32)
                   for layer, (_, g) in self.map_grids.items()},
            }
        return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}

    def _extract_batch(self, images):
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (self.work_size, self.work_size):
            x = F.interpolate(x, size=(self.work_size, self.work_size), mode="bilinear",
                              antialias=True, align_corners=False)
        S = self.work_size
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        lum = (r + g + b) / 3.0
        colour = torch.stack([lum, r - g, b - 0.5 * (r + g)], dim=1)  # (n, 3, S, S)

        # stage 1: Gabor energies, each scale at its pyramid level; e4: all at S / 4
        centred = (lum - lum.mean(dim=(1, 2), keepdim=True))[:, None]
        energies = []
        for d, bank in self._banks.items():
            img = F.avg_pool2d(centred, d) if d > 1 else centred
            p, size = self._pad(d), S // d
            spec = torch.fft.fft2(F.pad(img, (p, p, p, p), mode="reflect")[:, 0])
            z = torch.fft.ifft2(spec[:, None] * bank[None])[..., p:p + size, p:p + size]
            energies.append(torch.hypot(z.real, z.imag))  # (n, F_d, S/d, S/d)
        e4 = torch.cat([_on_grid(e, S // 4) for e in energies], dim=1)  # (n, F, S/4, S/4)
        stage1 = lambda g: self._stage1(energies, colour, lum, g)  # noqa: E731
        shallow = stage1(self.grid)

        # stage 2: normalised energy configurations, fixed random filters, full rectification
        norm = e4 / (e4.mean(dim=1, keepdim=True) + 0.01)
        x2 = torch.cat([norm, torch.log1p(e4 / 0.02), F.avg_pool2d(colour, 4) * 4.0], dim=1)
        y = F.conv2d(x2, self._deep_w, padding=self.deep_kernel // 2).abs()
        stage2 = lambda g: torch.log1p(_on_grid(y, g))  # noqa: E731
        deep = stage2(self.grid)

        emb = [shallow.mean(dim=(2, 3)), deep.mean(dim=(2, 3)),
               F.adaptive_avg_pool2d(shallow, 2).flatten(1), F.adaptive_avg_pool2d(deep, 2).flatten(1)]
        tokens = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731  (n, C, g, g) -> (n, g*g, C)
        maps = {}
        for layer, (stage, g) in self.map_grids.items():
            same = g == self.grid  # the token grids themselves: computed once
            grid = (shallow if same else stage1(g)) if stage == 1 else (deep if same else stage2(g))
            maps[map_key(layer)] = tokens(grid).numpy()
        return {
            "tokens_shallow": tokens(shallow).numpy(),
            "tokens_deep": tokens(deep).numpy(),
            "embedding": torch.cat(emb, dim=1).numpy(),
            **maps,
        }

    def _stage1(self, energies, colour, lum, g):
        """Stage 1 on a g x g grid: log energies, colour, log contrast: (n, token_dim, g, g)."""
        cell = self.work_size // g
        e_pool = torch.cat([_on_grid(e, g) for e in energies], dim=1)
        c_pool = F.avg_pool2d(colour, cell)
        sq = F.avg_pool2d(lum[:, None] ** 2, cell) - F.avg_pool2d(lum[:, None], cell) ** 2
        contrast = sq.clamp_min(0).sqrt()
        return torch.cat([torch.log1p(e_pool / 0.02), c_pool * 4.0, torch.log1p(contrast / 0.02)], dim=1)


def _on_grid(t: torch.Tensor, g: int) -> torch.Tensor:
    """A (n, C, s, s) map on a g x g grid: averaged over blocks where s > g,
    each value repeated where s < g (a coarse pyramid level under a fine grid)."""
    s = t.shape[-1]
    if s % g and g % s:
        raise ValueError(f"a {s} x {s} map cannot be put on a {g} x {g} grid (neither divides the other)")
    if s >= g:
        return F.avg_pool2d(t, s // g) if s > g else t
    r = g // s
    return t.repeat_interleave(r, dim=2).repeat_interleave(r, dim=3)
