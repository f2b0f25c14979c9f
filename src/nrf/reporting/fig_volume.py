"""Figure fig_volume: the measured response on a subject's voxels beside NRF queried on finer grids.

For a few test images, one row each, on the same axial slice (MNI z), drawn
with nilearn's plot_stat_map over the MNI152 template (L/R marked, bundled
and offline): the measured response (trial-averaged, the prepared test split)
on the subject's own voxels; NRF's prediction at the coarse resolution (NSD's
1.8 mm by default) and at the fine one (1 mm by default; config
``volumes.figure_resolutions_mm``); and, on the simulator, the noiseless
truth on the fine grid. Each map is z-scored over its own in-mask points, so
maps on different scales share one colour scale, and drawn voxel by voxel
(nearest), so each grid's resolution shows. The last row shows the first
image's fine-grid prediction on fsaverage5's inflated ventral surface over
its sulcal depth, with its own colour bar.
"""

from __future__ import annotations

import gc

from pathlib import Path

import nibabel as nib
import numpy as np

from nrf.data.prepared import load_prepared
from nrf.data.simulate import SimulatedBrain, SimulationParams
from nrf.reporting.brain_maps import SURFACE_ZOOM, surface_axes
from nrf.reporting.style import save_figure
from nrf.volumes.grid import func_grid_affine, grid_points, mni_grid, read_volume


def _zscore(a, mask):
    a = np.where(mask, a, np.nan)
    return (a - np.nanmean(a)) / (np.nanstd(a) + 1e-12)


def measured_volume(responses, voxel_ijk, grid_affine, shape, affine) -> np.ndarray:
    """(X, Y, Z) MNI-grid volume: each grid point takes the value of the func-grid voxel it falls in
    (nearest), NaN where that voxel was not measured. ``responses`` (n_voxels,) or (n_voxels, n_images);
    then (X, Y, Z, n_images): the grid's nearest voxels are found once for every image."""
    responses = np.asarray(responses, dtype=np.float32)
    images = responses.reshape(len(responses), -1)
    grid = np.full((*tuple(np.asarray(voxel_ijk).max(0) + 1), images.shape[1]), np.nan, np.float32)
    grid[tuple(np.asarray(voxel_ijk).T)] = images
    # each MNI grid point's func-grid voxel, axis by axis (apply_affine on the 7 million points of a
    # 1 mm grid took seconds)
    to_func = np.linalg.inv(grid_affine) @ affine
    axes = np.ix_(*(np.arange(n, dtype=np.float64) for n in shape))
    ijk = np.stack([np.rint(sum(to_func[row, col] * axes[col] for col in range(3)) + to_func[row, 3]).ravel()
                    for row in range(3)], axis=1).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.array(grid.shape[:3])), axis=1)
    out = np.full((int(np.prod(shape)), images.shape[1]), np.nan, np.float32)
    out[ok] = grid[tuple(ijk[ok].T)]
    return out.reshape(*shape, *responses.shape[1:])


def plot_fig_volume(out_png, out_pdf=None, *, columns: list[tuple[str, np.ndarray, np.ndarray]],
                    image_names: list[str], z_mm: float, surface_img=None, subject: str = "") -> None:
    """columns : [(title, volume (X, Y, Z, n_img) with NaN outside the map, affine)], same images.
    surface_img : a 3-D NIfTI drawn on fsaverage5 (optional).

    Each slice is nilearn's plot_stat_map on the MNI152 template (L/R marked), the map
    z-scored over its own points, drawn voxel by voxel (nearest) so each grid's
    resolution shows; the surface row samples ``surface_img`` onto fsaverage5's
    inflated ventral surface over its sulcal depth."""
    import matplotlib  # matplotlib, nilearn: heavy; only the figure jobs draw

    matplotlib.use("Agg")
    # matplotlib and nilearn, as above (pyplot once the backend is chosen)
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from nilearn import datasets, plotting

    # nilearn runs gc.collect() each time it reads an image's data (84 times here, 0.2 s each over
    # this process's objects): objects that exist now are left out of those collections
    gc.freeze()
    n_img, n_col = len(image_names), len(columns)
    extra = 1 if surface_img is not None else 0
    panel = 2.3  # inches per slice panel
    surface_row = 0.9 * panel  # a ventral hemisphere is 2.4 times wider than high
    fig = plt.figure(figsize=(panel * n_col + 0.9, 1.15 * panel * n_img + 1.35 * surface_row * extra + 0.6))
    grid = fig.add_gridspec(n_img + extra, n_col + 1, width_ratios=[1] * n_col + [0.06],
                            height_ratios=[1.15 * panel] * n_img + [1.1 * surface_row] * extra, hspace=0.25,
                            wspace=0.04, left=0.04, right=0.93, top=1 - 0.5 / fig.get_figheight(), bottom=0.02)
    template = datasets.load_mni152_template(resolution=1)
    cmap, zmax = "RdBu_r", 2.5
    for c, (title, vol, affine) in enumerate(columns):
        for r in range(n_img):
            ax = fig.add_subplot(grid[r, c])
            data = vol[..., r]
            z = np.nan_to_num(_zscore(data, np.isfinite(data)))  # 0 outside the map: not drawn
            plotting.plot_stat_map(
                nib.Nifti1Image(z.astype(np.float32), affine), bg_img=template, display_mode="z",
                cut_coords=[z_mm], axes=ax, figure=fig, colorbar=False, cmap=cmap, vmin=-zmax, vmax=zmax,
                symmetric_cbar=True, threshold=1e-3, annotate=True, draw_cross=False, black_bg=False,
                resampling_interpolation="nearest",
            )
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.text(-0.03, 0.5, image_names[r], transform=ax.transAxes, rotation=90, va="center",
                        ha="right", fontsize=9)
    scale = ScalarMappable(norm=Normalize(-zmax, zmax), cmap=cmap)
    cax = fig.add_subplot(grid[:n_img, n_col])
    fig.colorbar(scale, cax=cax).set_label("response (z over the map's points)", fontsize=8)
    cax.tick_params(labelsize=7)
    if surface_img is not None:
        from nilearn import surface  # nilearn: heavy; as above

        surface_mm = float(nib.affines.voxel_sizes(surface_img.affine)[0])  # the grid it was queried on
        fsavg = datasets.load_fsaverage("fsaverage5")
        sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
        halves = grid[n_img, :n_col].subgridspec(1, 2, wspace=0.02)
        for hemi, cell in zip(("left", "right"), halves):
            ax = surface_axes(fig, cell, "ventral")
            texture = surface.vol_to_surf(surface_img, fsavg["pial"].parts[hemi], interpolation="linear",
                                          radius=3.0)
            plotting.plot_surf_stat_map(fsavg["inflated"].parts[hemi], texture, hemi=hemi, view="ventral", axes=ax,
                                        bg_map=sulc.data.parts[hemi], colorbar=False, cmap=cmap, vmin=-zmax,
                                        vmax=zmax, symmetric_cbar=True, threshold=1e-3, figure=fig)
            ax.set_box_aspect(None, zoom=SURFACE_ZOOM["ventral"])
            box = cell.get_position(fig)
            fig.text((box.x0 + box.x1) / 2, box.y1, f"{hemi} hemisphere", ha="center", va="bottom", fontsize=8)
        box = grid[n_img, :n_col].get_position(fig)
        fig.text((box.x0 + box.x1) / 2, box.y1 + 0.22 / fig.get_figheight(),
                 f"NRF queried at {surface_mm:g} mm, {image_names[0]}, on fsaverage5's inflated surface, "
                 "ventral view (grey: sulcal depth)", ha="center", va="bottom", fontsize=9)
        cax = fig.add_subplot(grid[n_img, n_col])
        fig.colorbar(scale, cax=cax).set_label("response (z over the map's points)", fontsize=8)
        cax.tick_params(labelsize=7)
    fig.suptitle(f"{subject}: measured on the subject's voxels vs NRF queried on MNI grids, axial z = {z_mm:g} mm "
                 "(MNI152 template)", fontsize=10, y=1 - 0.12 / fig.get_figheight())
    save_figure(fig, out_png, out_pdf)


def image_ids_of(sidecar: dict) -> np.ndarray:
    """The 0-based image ids of a volume's images, from their file names (``{id:06d}.png``)."""
    return np.array([int(Path(i["file"]).stem) for i in sidecar["images"]], dtype=np.int64)


def fig_volume(out_png, out_pdf=None, *, volumes: dict, prepared, simulation: dict | None = None, subjects=None,
               seed: int = 0, n_images: int = 3, z_mm: float | None = None) -> dict:
    """Build fig_volume from NRF volumes ({resolution mm: NIfTI written by query_volume}) of a
    subject's test images exported as ``{id:06d}.png`` (see module docstring)."""
    prep = load_prepared(prepared, splits=("test",))
    columns, ids, surface_img = [], None, None
    for res in sorted(volumes, reverse=True):
        img, side = read_volume(volumes[res])  # its sha256 checked against the sidecar's
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
    measured = measured_volume(prep.test.responses[rows].T, prep.voxel_ijk, grid_affine, shape1, aff1)
    voxel_mm = float(np.mean(nib.affines.voxel_sizes(grid_affine)))
    columns.insert(0, (f"measured ({voxel_mm:.1f} mm voxels)", measured, aff1))
    if simulation is not None:

        brain = SimulatedBrain(SimulationParams(subjects=subjects, seed=seed, **simulation))
        _, vol, affine = columns[-1]
        mask = np.isfinite(vol[..., 0])
        truth = np.full(vol.shape, np.nan, np.float32)
        truth[mask] = brain.responses(ids, grid_points(mask.shape, affine, mask), prep.subject).T
        columns.append((f"simulator truth at {affine[0, 0]:g} mm", truth, affine))
    plot_fig_volume(out_png, out_pdf, columns=columns, image_names=[f"image {i}" for i in ids], z_mm=z_mm,
                    surface_img=surface_img, subject=prep.subject)
    return {"z_mm": z_mm, "image_ids": ids.tolist(), "resolutions": sorted(volumes)}
