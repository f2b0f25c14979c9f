"""Figure of an in-silico contrast (:mod:`nrf.volumes.contrasts`): the Welch t map
on nilearn's glass brain and on the fsaverage5 surface (both bundled with nilearn,
offline)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from nrf.reporting.brain_maps import SURFACE_ZOOM, surface_axes
from nrf.reporting.style import save_figure


def plot_contrast(t_path, out_png, out_pdf=None, *, title: str, label_a: str, label_b: str) -> None:
    """The t map on the glass brain (four views) and on fsaverage5's inflated ventral surface
    (over its sulcal depth), both on one symmetric colour scale with a colour bar per row."""
    import matplotlib  # matplotlib, nilearn: heavy; only the figure jobs draw

    matplotlib.use("Agg")
    # matplotlib and nilearn, as above (pyplot once the backend is chosen)
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from nilearn import datasets, plotting, surface

    img = nib.load(t_path)
    values = np.abs(np.asarray(img.dataobj))
    values = values[values > 0]  # the mask's points: 0 outside it would shrink the scale
    vmax = float(np.percentile(values, 99)) if len(values) else 1.0
    cmap = "RdBu_r"
    fig = plt.figure(figsize=(12, 5.6))
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.035], height_ratios=[1, 0.8], left=0.01, right=0.94,
                            top=0.9, bottom=0.02, hspace=0.12, wspace=0.03)
    glass = fig.add_subplot(grid[0, :2])
    plotting.plot_glass_brain(img, axes=glass, figure=fig, display_mode="lyrz", colorbar=False, plot_abs=False,
                              cmap=cmap, vmax=vmax, vmin=-vmax, symmetric_cbar=True)
    glass.set_title("glass brain (maximum intensity projections)", fontsize=9)
    scale = ScalarMappable(norm=Normalize(-vmax, vmax), cmap=cmap)
    fsavg = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    for col, hemi in enumerate(("left", "right")):
        ax = surface_axes(fig, grid[1, col], "ventral")
        texture = surface.vol_to_surf(img, fsavg["pial"].parts[hemi], interpolation="linear", radius=3.0)
        plotting.plot_surf_stat_map(fsavg["inflated"].parts[hemi], texture, hemi=hemi, view="ventral", axes=ax,
                                    bg_map=sulc.data.parts[hemi], colorbar=False, cmap=cmap, vmin=-vmax, vmax=vmax,
                                    symmetric_cbar=True, threshold=1e-3, figure=fig)
        ax.set_box_aspect(None, zoom=SURFACE_ZOOM["ventral"])
        box = grid[1, col].get_position(fig)
        fig.text((box.x0 + box.x1) / 2, box.y1, f"{hemi} hemisphere, ventral (fsaverage5; grey: sulcal depth)",
                 ha="center", va="bottom", fontsize=9)
    for row in range(2):
        cax = fig.add_subplot(grid[row, 2])
        fig.colorbar(scale, cax=cax).set_label(f"Welch t, {label_a} − {label_b}", fontsize=8)
        cax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: in-silico contrast, {label_a} > {label_b} (red) / < (blue)", fontsize=11)
    save_figure(fig, out_png, out_pdf)
