"""Figure 3: seen images beside their reconstructions from each response source.

One row per chosen test image; columns: the seen image (GT), then the
reconstruction decoded from the measured responses and from each model's
predicted responses, all of one subject.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nrf.decoding.reconstructions import read_reconstructions  # noqa: E402
from nrf.features.cache import read_stimuli  # noqa: E402
from nrf.reporting.style import save_figure, style  # noqa: E402


def figure3(recon_paths: dict[str, str], stimuli_path, *, rows, subject: str, backend: str):
    """The figure, with ``rows`` = positions among the subject's sorted test images.

    recon_paths : source -> reconstruction file (nrf.decoding.reconstructions), in column order
    """
    recons = {source: read_reconstructions(path) for source, path in recon_paths.items()}
    ids = next(iter(recons.values())).image_ids
    for source, recon in recons.items():
        if not np.array_equal(recon.image_ids, ids):
            raise ValueError(f"{recon_paths[source]}: test images differ from {next(iter(recon_paths.values()))}")
    rows = [r for r in rows if r < len(ids)]
    if not rows:
        raise ValueError(f"none of the figure rows fall among the {len(ids)} test images")
    seen = read_stimuli(stimuli_path, ids[rows])
    columns = [("GT (seen)", "0.6", seen)] + [
        (style(source).name, style(source).colour, recon.images[rows]) for source, recon in recons.items()
    ]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.6 * len(columns), 1.6 * len(rows) + 0.6),
                             squeeze=False)
    for c, (title, colour, images) in enumerate(columns):
        axes[0, c].set_title(title.replace(" (", "\n(") if len(title) > 18 else title, fontsize=8)
        for r, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():  # each source framed in its colour (nrf.reporting.style)
                spine.set_edgecolor(colour)
                spine.set_linewidth(2.5)
            if c == 0:
                ax.set_ylabel(f"image {ids[rows[r]]}", fontsize=8)
    fig.suptitle(f"Figure 3: reconstructions, {subject}, {backend} decoder", fontsize=10)
    fig.tight_layout()
    return fig


def write_figure3(recon_paths: dict[str, str], stimuli_path, out_png, out_pdf=None, *, rows, subject: str,
                  backend: str) -> None:
    fig = figure3(recon_paths, stimuli_path, rows=rows, subject=subject, backend=backend)
    save_figure(fig, out_png, out_pdf)
