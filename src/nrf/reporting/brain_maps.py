"""Per-voxel values drawn in anatomical space with nilearn (offline: the MNI152
template and the fsaverage5 surface ship with it).

The voxels' MNI coordinates carry the values into a volume on the MNI152
2 mm grid (each grid point within ``radius_mm`` of a voxel takes its nearest
voxel's value), which is then sampled onto the fsaverage5 surface.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy.spatial import cKDTree


def coords_to_volume(coords_mm, values, *, radius_mm: float = 3.0, resolution: int = 2):
    """A NIfTI image on the MNI152 grid holding ``values`` at ``coords_mm``.

    coords_mm : (n, 3) MNI mm; values : (n,) float. Grid points farther than
    ``radius_mm`` from every voxel are 0 (nilearn's "no value").
    """
    from nilearn import datasets  # nilearn: heavy; only the figure jobs need it

    template = datasets.load_mni152_template(resolution=resolution)
    shape, affine = template.shape[:3], template.affine
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    coords_mm = np.asarray(coords_mm, dtype=np.float64)
    dist, nearest = cKDTree(coords_mm).query(xyz, distance_upper_bound=radius_mm)
    data = np.zeros(len(xyz), dtype=np.float32)
    inside = np.isfinite(dist)
    data[inside] = np.asarray(values, dtype=np.float32)[nearest[inside]]
    return nib.Nifti1Image(data.reshape(shape), affine)


def plot_surface_panels(fig, volumes: dict, *, vmax: float, title_suffix: str = "", cmap: str = "inferno",
                        views=(("left", "lateral"), ("left", "ventral")), title_colours: dict | None = None,
                        colorbar_label: str = "", grid=None):
    """One column per volume (its key is the column title), one row per (hemisphere, view),
    on fsaverage5's inflated surface over its sulcal depth (grey), with one shared colour
    scale [0, vmax] and a colour bar at the end of every row. Values <= 0 are not coloured.

    title_colours : {column title: colour} (the method's colour, nrf.reporting.style)
    grid          : a SubplotSpec to draw into (default: the whole figure)
    """
    # matplotlib, nilearn: heavy; only the figure jobs draw
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from nilearn import datasets, plotting
    from nilearn.surface import SurfaceImage

    fsaverage = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    n_rows, n_cols = len(views), len(volumes)
    ratios = [1.0] * n_cols + [0.05]
    cells = (grid.subgridspec(n_rows, n_cols + 1, width_ratios=ratios, wspace=0.02, hspace=0.05) if grid is not None
             else fig.add_gridspec(n_rows, n_cols + 1, width_ratios=ratios, wspace=0.02, hspace=0.05))
    surfaces = {name: SurfaceImage.from_volume(mesh=fsaverage["pial"], volume_img=img) for name, img in volumes.items()}
    mappable = ScalarMappable(norm=Normalize(0.0, vmax), cmap=cmap)
    for row, (hemi, view) in enumerate(views):
        for col, (name, surf) in enumerate(surfaces.items()):
            ax = surface_axes(fig, cells[row, col], view)
            plotting.plot_surf_stat_map(
                surf_mesh=fsaverage["inflated"], stat_map=surf, hemi=hemi, view=view, bg_map=sulc,
                cmap=cmap, vmin=0.0, vmax=vmax, threshold=1e-3, colorbar=False, axes=ax, figure=fig,
            )
            ax.set_box_aspect(None, zoom=SURFACE_ZOOM[view])
            box = cells[row, col].get_position(fig)
            if row == 0:
                fig.text((box.x0 + box.x1) / 2, box.y1, f"{name}{title_suffix}", ha="center", va="bottom",
                         fontsize=9, color=(title_colours or {}).get(name, "black"))
            if col == 0:
                fig.text(box.x0, (box.y0 + box.y1) / 2, f"{hemi} {view}", rotation=90, va="center", ha="right",
                         fontsize=8)
        cax = fig.add_subplot(cells[row, n_cols])
        bar = fig.colorbar(mappable, cax=cax)
        bar.set_label(colorbar_label, fontsize=7)
        bar.ax.tick_params(labelsize=7)
        _shrink(cax, 0.8)
    return fig


#: how far each view is zoomed so the inflated hemisphere fills the width of its square 3-D axes
SURFACE_ZOOM = {"lateral": 1.45, "medial": 1.45, "ventral": 1.45, "dorsal": 1.45, "anterior": 1.2, "posterior": 1.2}
#: width / height of an inflated fsaverage5 hemisphere seen from each side
SURFACE_ASPECT = {"lateral": 1.5, "medial": 1.5, "ventral": 2.2, "dorsal": 2.2, "anterior": 0.8, "posterior": 0.8}


def surface_axes(fig, cell, view: str = "lateral"):
    """A 3-D axes for one surface view in a grid cell: matplotlib draws 3-D axes in a
    square, so the axes is a transparent square centred on the cell, as wide as the
    hemisphere seen from ``view`` can be while it stays within the cell's height (a
    hemisphere is wider than high: the square's overhang above and below stays empty)."""
    box = cell.get_position(fig)
    fig_w, fig_h = fig.get_size_inches()
    side_in = min(box.width * fig_w, box.height * fig_h * SURFACE_ASPECT[view])
    w, h = side_in / fig_w, side_in / fig_h
    ax = fig.add_axes([(box.x0 + box.x1 - w) / 2, (box.y0 + box.y1 - h) / 2, w, h], projection="3d")
    ax.set_facecolor("none")
    return ax


def _shrink(ax, fraction: float) -> None:
    """Shrink an axes' height about its centre (a colour bar shorter than its row)."""
    pos = ax.get_position()
    pad = pos.height * (1 - fraction) / 2
    ax.set_position([pos.x0, pos.y0 + pad, pos.width, pos.height * fraction])
