"""Per-voxel values drawn in anatomical space with nilearn (offline: the MNI152
template and the fsaverage5 surface ship with it).

The voxels' MNI coordinates carry the values into a volume on the MNI152
2 mm grid (each grid point within ``radius_mm`` of a voxel takes its nearest
voxel's value), which is then sampled onto the fsaverage5 surface.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def coords_to_volume(coords_mm, values, *, radius_mm: float = 3.0, resolution: int = 2):
    """A NIfTI image on the MNI152 grid holding ``values`` at ``coords_mm``.

    coords_mm : (n, 3) MNI mm; values : (n,) float. Grid points farther than
    ``radius_mm`` from every voxel are 0 (nilearn's "no value").
    """
    import nibabel as nib
    from nilearn import datasets

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
                        views=(("left", "lateral"), ("left", "ventral"))):
    """One column per volume (its key is the column title), one row per (hemisphere, view),
    on fsaverage5's inflated surface with one shared colour scale [0, vmax]."""
    from nilearn import datasets, plotting
    from nilearn.surface import SurfaceImage

    fsaverage = datasets.load_fsaverage("fsaverage5")
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    n_rows, n_cols = len(views), len(volumes)
    for col, (name, img) in enumerate(volumes.items()):
        surf = SurfaceImage.from_volume(mesh=fsaverage["pial"], volume_img=img)
        for row, (hemi, view) in enumerate(views):
            ax = fig.add_subplot(n_rows, n_cols, row * n_cols + col + 1, projection="3d")
            plotting.plot_surf_stat_map(
                surf_mesh=fsaverage["inflated"], stat_map=surf, hemi=hemi, view=view, bg_map=sulc,
                cmap=cmap, vmin=0.0, vmax=vmax, threshold=1e-3, colorbar=False, axes=ax, figure=fig,
            )
            if row == 0:
                ax.set_title(f"{name}{title_suffix}", fontsize=10)
            if col == 0:
                ax.text2D(-0.05, 0.5, f"{hemi} {view}", transform=ax.transAxes, rotation=90, va="center",
                          fontsize=9)
    return fig
