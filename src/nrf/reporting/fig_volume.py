"""Figure fig_volume: the measured response on a subject's voxels beside NRF queried on finer grids.

For a few test images, one row each, on the same axial slice (MNI z):
the measured response (trial-averaged, the prepared test split) on the
subject's own voxels; NRF's prediction at the coarse resolution (NSD's
1.8 mm by default) and at the fine one (1 mm by default; config
``volumes.figure_resolutions_mm``); and, on the simulator, the noiseless
truth on the fine grid. The last row shows the first image's fine-grid
prediction on fsaverage5's
inflated surface (nilearn, offline). Each map is z-scored over its own
in-mask points, so maps on different scales share one colour scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrf.atomic import atomic_output
from nrf.data.prepared import load_prepared
from nrf.data.simulate import SimulatedBrain, SimulationParams
from nrf.volumes.grid import func_grid_affine, grid_points, mni_grid


def _zscore(a, mask):
    a = np.where(mask, a, np.nan)
    return (a - np.nanmean(a)) / (np.nanstd(a) + 1e-12)


def _slice_at(img_data, affine, z_mm):
    """(X, Y) slice of a 3-D volume nearest MNI z, and its imshow extent (x0, x1, y0, y1) mm."""
    k = int(np.clip(np.rint((z_mm - affine[2, 3]) / affine[2, 2]), 0, img_data.shape[2] - 1))
    r = affine[0, 0]
    x0, y0 = affine[0, 3] - r / 2, affine[1, 3] - r / 2
    return img_data[:, :, k], (x0, x0 + r * img_data.shape[0], y0, y0 + r * img_data.shape[1])


def measured_volume(responses, voxel_ijk, grid_affine, shape, affine) -> np.ndarray:
    """(X, Y, Z) MNI-grid volume: each grid point takes the value of the func-grid voxel it falls in
    (nearest), NaN where that voxel was not measured."""
    import nibabel as nib

    grid = np.full(tuple(np.asarray(voxel_ijk).max(0) + 1), np.nan, np.float32)
    grid[tuple(np.asarray(voxel_ijk).T)] = responses
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(grid_affine) @ affine,
                                           np.indices(shape).reshape(3, -1).T)).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(grid.shape)), axis=1)
    out = np.full(int(np.prod(shape)), np.nan, np.float32)
    out[ok] = grid[tuple(ijk[ok].T)]
    return out.reshape(shape)


def plot_fig_volume(out_png, *, columns: list[tuple[str, np.ndarray, np.ndarray]], image_names: list[str],
                    z_mm: float, surface_img=None, subject: str = "") -> None:
    """columns : [(title, volume (X, Y, Z, n_img) with NaN outside the map, affine)], same images.
    surface_img : a 3-D NIfTI drawn on fsaverage5 (optional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_img, n_col = len(image_names), len(columns)
    extra = 1 if surface_img is not None else 0
    fig = plt.figure(figsize=(3.0 * n_col + 1.0, 1.9 * n_img + 3.2 * extra + 0.6))
    grid = fig.add_gridspec(n_img + extra, n_col + 1, width_ratios=[1] * n_col + [0.06],
                            height_ratios=[1] * n_img + [1.9] * extra, hspace=0.5, wspace=0.25)
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("0.85")
    # one field of view for every panel: the finest column's in-slice extent, plus a margin
    _, vol, affine = columns[-1]
    sl, extent = _slice_at(np.isfinite(vol[..., 0]).astype(float), affine, z_mm)
    inside = np.argwhere(sl > 0)
    res = affine[0, 0]
    if len(inside):
        lo, hi = inside.min(0), inside.max(0)
        xlim = (extent[0] + res * lo[0] - 5, extent[0] + res * (hi[0] + 1) + 5)
        ylim = (extent[2] + res * lo[1] - 5, extent[2] + res * (hi[1] + 1) + 5)
    else:
        xlim, ylim = extent[:2], extent[2:]
    im = None
    for c, (title, vol, affine) in enumerate(columns):
        for r in range(n_img):
            ax = fig.add_subplot(grid[r, c])
            data = vol[..., r]
            z = _zscore(data, np.isfinite(data))
            sl, extent = _slice_at(z, affine, z_mm)
            im = ax.imshow(sl.T, origin="lower", extent=extent, cmap=cmap, vmin=-2.5, vmax=2.5,
                           interpolation="nearest")
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{image_names[r]}\nMNI y (mm)", fontsize=8)
            if r == n_img - 1:
                ax.set_xlabel("MNI x (mm)", fontsize=8)
            ax.tick_params(labelsize=7)
    cax = fig.add_subplot(grid[:n_img, n_col])
    fig.colorbar(im, cax=cax, label="response (z over the map's points)")
    if surface_img is not None:
        import nibabel as nib
        from nilearn import datasets, plotting, surface

        surface_mm = float(nib.affines.voxel_sizes(surface_img.affine)[0])  # the grid it was queried on
        fsavg = datasets.load_fsaverage("fsaverage5")
        for i, hemi in enumerate(("left", "right")):
            ax = fig.add_subplot(grid[n_img, i * max(1, n_col // 2): (i + 1) * max(1, n_col // 2)], projection="3d")
            texture = surface.vol_to_surf(surface_img, fsavg["pial"].parts[hemi], interpolation="linear",
                                          radius=3.0)
            plotting.plot_surf_stat_map(fsavg["inflated"].parts[hemi], texture, hemi=hemi, view="ventral", axes=ax,
                                        colorbar=False, cmap="RdBu_r", figure=fig,
                                        title=f"NRF {surface_mm:g} mm, {image_names[0]}, {hemi} ventral (fsaverage5)")
            ax.set_box_aspect(None, zoom=1.7)  # the ventral view fills its panel instead of a third of it
    fig.suptitle(f"{subject}: measured on the subject's voxels vs NRF queried on MNI grids, axial z = {z_mm:g} mm",
                 fontsize=10, y=0.995)
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def image_ids_of(sidecar: dict) -> np.ndarray:
    """The 0-based image ids of a volume's images, from their file names (``{id:06d}.png``)."""
    return np.array([int(Path(i["file"]).stem) for i in sidecar["images"]], dtype=np.int64)


def fig_volume(out_png, *, volumes: dict, prepared, simulation: dict | None = None, subjects=None, seed: int = 0,
               n_images: int = 3, z_mm: float | None = None) -> dict:
    """Build fig_volume from NRF volumes ({resolution mm: NIfTI written by query_volume}) of a
    subject's test images exported as ``{id:06d}.png`` (see module docstring)."""
    import json

    import nibabel as nib


    prep = load_prepared(prepared, splits=("test",))
    columns, ids, surface_img = [], None, None
    for res in sorted(volumes, reverse=True):
        img = nib.load(volumes[res])
        side = json.loads(Path(str(volumes[res]) + ".json").read_text())
        these = image_ids_of(side)[:n_images]
        if ids is not None and not np.array_equal(ids, these):
            raise ValueError(f"{volumes[res]}: images {these.tolist()} differ from the other volumes' {ids.tolist()}")
        ids = these
        vol = np.asarray(img.dataobj[..., :len(ids)], dtype=np.float32)
        vol[vol == 0] = np.nan  # outside the mask
        columns.append((f"NRF queried at {res:g} mm", vol, img.affine))
        # z-scored like the slice panels, so the region outside the map (0) is the map's mean, not an extreme
        first = vol[..., 0]
        surface_img = nib.Nifti1Image(np.nan_to_num(_zscore(first, np.isfinite(first))), img.affine)
    missing = set(ids) - set(prep.test.image_ids)
    if missing:
        raise ValueError(f"{prepared}: images {sorted(missing)} are not this subject's test images")
    rows = np.searchsorted(prep.test.image_ids, ids)
    grid_affine = func_grid_affine(prep.voxel_ijk, prep.coords)
    if z_mm is None:  # the axial slice through the most measured voxels
        vals, counts = np.unique(np.rint(prep.coords[:, 2] / 2) * 2, return_counts=True)
        z_mm = float(vals[counts.argmax()])
    shape1, aff1 = mni_grid(1.0)
    measured = np.stack([measured_volume(prep.test.responses[r], prep.voxel_ijk, grid_affine, shape1, aff1)
                         for r in rows], -1)
    voxel_mm = float(np.mean(nib.affines.voxel_sizes(grid_affine)))
    columns.insert(0, (f"measured ({voxel_mm:.1f} mm voxels)", measured, aff1))
    if simulation is not None:

        brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
        _, vol, affine = columns[-1]
        mask = np.isfinite(vol[..., 0])
        truth = np.full(vol.shape, np.nan, np.float32)
        truth[mask] = brain.responses(ids, grid_points(mask.shape, affine, mask), prep.subject).T
        columns.append((f"simulator truth at {affine[0, 0]:g} mm", truth, affine))
    plot_fig_volume(out_png, columns=columns, image_names=[f"image {i}" for i in ids], z_mm=z_mm,
                    surface_img=surface_img, subject=prep.subject)
    return {"z_mm": z_mm, "image_ids": ids.tolist(), "resolutions": sorted(volumes)}
