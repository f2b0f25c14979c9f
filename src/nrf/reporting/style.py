"""How every figure names and colours a method, and how every figure is saved.

One entry per method key used anywhere in the pipeline: the model keys of
the full-data runs (``nrf``, ``linear``, ``fwrf``, ``ridge``, ``universal``,
``universal_joint``, ``measured``), the few-image and continuous-space methods
of :mod:`nrf.experiments.methods`, the Universal transfer curve and the probe
conditions of :mod:`nrf.perturbations`. Each gets a display name, ONE colour
of the Okabe–Ito palette (colour-blind safe) and a marker, so a method looks
the same in every figure. Where two keys are one method (``nrf`` trained on
all images is NRF scratch's full-data point; ``linear`` is Linear
Regression's) they share a colour; keys that never share a figure may share a
colour (:data:`FIGURE_METHODS` lists which keys each figure draws, and the
tests check the colours are distinct within each).

:func:`save_figure` writes every figure: PNG and PDF at one dpi, atomically,
with no timestamp or version in the PDF, so a rerun writes the same bytes.

Torch-free: it imports only the torch-free name modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from nrf.atomic import atomic_output
from nrf.experiments.methods import (
    AVERAGE,
    CONTINUOUS_METHODS,
    ENSEMBLE,
    HELDOUT,
    LINEAR,
    LINEAR_TRILINEAR,
    NRF_ONE,
    NRF_POOLED,
    NRF_POOLED_FT,
    NRF_POOLED_TRILINEAR,
    NRF_TRILINEAR,
    SCRATCH,
    TRUTH_TRILINEAR,
)
from nrf.perturbations import ALIGNED, GLOBAL, INTACT, SHIFTED, WITHIN_ROI

#: Okabe & Ito (2008), the colour-blind-safe palette of eight
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

#: the transfer figure's curve of the joint Universal encoder given only new voxel embeddings
UNIVERSAL_TRANSFER = "Universal transfer"
#: prefix of nrf.experiments.methods.base_label (one single finetune per base subject)
BASE_PREFIX = "NRF finetune base "

#: every figure's PNG dpi (the PDF is vector; its raster parts use it too)
DPI = 150
#: no creation date, no version strings: a PDF is the same bytes on every rerun
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "nrf"}
PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class Style:
    name: str  #: display name, as the paper spells it
    colour: str  #: one Okabe–Ito colour
    marker: str  #: matplotlib marker, so lines differ in greyscale too


_C = OKABE_ITO
STYLES: dict[str, Style] = {
    # full-data models (Table 1, Figure 3), keyed as the rules name them
    "measured": Style("Measured fMRI", _C["black"], "D"),
    "nrf": Style("NRF", _C["blue"], "o"),
    "linear": Style("Linear Regression", _C["orange"], "s"),
    "fwrf": Style("fWRF", _C["vermillion"], "v"),
    "ridge": Style("Ridge (per-voxel CV)", _C["yellow"], "P"),
    "universal": Style("Universal (single subject)", _C["sky blue"], "^"),
    "universal_joint": Style("Universal (all subjects)", _C["reddish purple"], "X"),
    # few-image methods (Tables 2, 7-9, Figure 2, the transfer figure)
    SCRATCH: Style("NRF scratch", _C["blue"], "o"),
    LINEAR: Style("Linear Regression", _C["orange"], "s"),
    ENSEMBLE: Style("NRF finetune ensemble", _C["bluish green"], "D"),
    AVERAGE: Style("NRF finetune average", _C["sky blue"], "^"),
    HELDOUT: Style("NRF finetune ensemble (held-out λ)", _C["yellow"], "P"),
    BASE_PREFIX: Style("NRF finetune base", _C["vermillion"], "v"),
    UNIVERSAL_TRANSFER: Style("Universal transfer (embeddings only)", _C["reddish purple"], "X"),
    # probe conditions (Figure 4): intact is NRF scratch itself
    INTACT: Style("coordinates intact", _C["blue"], "o"),
    GLOBAL: Style("shuffled globally", _C["vermillion"], "s"),
    WITHIN_ROI: Style("shuffled within ROI", _C["orange"], "^"),
    ALIGNED: Style("aligned", _C["bluish green"], "D"),
    SHIFTED: Style("shifted", _C["reddish purple"], "v"),
    # continuous-space methods (fig_continuous_space): NRF queried as NRF, the voxel-locked
    # linear baseline as Linear Regression, the truth as the measured data
    NRF_ONE: Style(NRF_ONE, _C["blue"], "o"),
    NRF_TRILINEAR: Style(NRF_TRILINEAR, _C["sky blue"], "^"),
    LINEAR_TRILINEAR: Style(LINEAR_TRILINEAR, _C["orange"], "s"),
    NRF_POOLED: Style(NRF_POOLED, _C["vermillion"], "D"),
    NRF_POOLED_TRILINEAR: Style(NRF_POOLED_TRILINEAR, _C["yellow"], "P"),
    NRF_POOLED_FT: Style(NRF_POOLED_FT, _C["reddish purple"], "v"),
    TRUTH_TRILINEAR: Style(TRUTH_TRILINEAR, _C["black"], "x"),
}

#: the method keys each figure draws, in legend/column order
FIGURE_METHODS = {
    "fig2a": (SCRATCH, LINEAR),
    "fig2b": (ENSEMBLE, SCRATCH, LINEAR),
    "fig3": ("measured", "linear", "fwrf", "ridge", "universal", "universal_joint", "nrf"),
    "fig4": (INTACT, GLOBAL, WITHIN_ROI, ALIGNED, SHIFTED),
    "fig_universal_transfer": (UNIVERSAL_TRANSFER, SCRATCH, ENSEMBLE, LINEAR),
    "fig_continuous_space": CONTINUOUS_METHODS,
    # every few-image method, should one figure ever draw them all
    "adaptation": (LINEAR, SCRATCH, ENSEMBLE, AVERAGE, HELDOUT, BASE_PREFIX, UNIVERSAL_TRANSFER),
}


def style(key: str) -> Style:
    """The style of a method key; a per-base finetune label (``NRF finetune base X->Y``)
    takes the base-finetune colour and its own name. Unknown keys raise KeyError."""
    if key in STYLES:
        return STYLES[key]
    if key.startswith(BASE_PREFIX):
        base = STYLES[BASE_PREFIX]
        return Style(key.replace("->", " → "), base.colour, base.marker)
    raise KeyError(f"no display name and colour for method {key!r}: add it to nrf.reporting.style.STYLES")


def display_name(key: str) -> str:
    return style(key).name


def colour(key: str) -> str:
    return style(key).colour


def log_count_axis(ax, counts) -> None:
    """A log x axis with a tick at each of ``counts`` (image counts) labelled as a plain number
    and no minor labels (the log axis' own labels ran into one string), slanted where two
    counts sit close, with half a step of margin at both ends."""
    counts = sorted({int(n) for n in counts})
    ax.set_xscale("log")
    close = len(counts) > 1 and min(b / a for a, b in zip(counts, counts[1:])) < 1.8
    ax.set_xticks(counts, [str(n) for n in counts], rotation=40 if close else 0, ha="right" if close else "center")
    ax.minorticks_off()
    if counts:
        ax.set_xlim(counts[0] / 1.5, counts[-1] * 1.5)


#: collections with more paths than this are rasterised in PDFs (save_figure)
RASTER_PATHS = 5000


def save_figure(fig, png, pdf=None) -> None:
    """Write ``fig`` as PNG (and PDF when ``pdf`` is given) at :data:`DPI`, atomically, then close it.

    No timestamps or version strings go into either file, so a rerun on the
    same data writes byte-identical files. In the PDF, a collection of more
    than :data:`RASTER_PATHS` paths (a brain surface's triangles) is embedded
    as an image at :data:`DPI`, with axes and text still vector: drawn as
    vector paths, fsaverage5's 20,000 triangles per hemisphere took half a
    minute per figure to write and made files of megabytes.
    """
    import matplotlib.pyplot as plt  # matplotlib: heavy; the name modules' torch-free jobs never draw

    try:
        with atomic_output(png) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
        if pdf is not None:
            for ax in fig.axes:
                for artist in ax.collections:
                    if len(artist.get_paths()) > RASTER_PATHS:
                        artist.set_rasterized(True)
            with atomic_output(pdf) as tmp:
                fig.savefig(tmp, format="pdf", dpi=DPI, metadata=PDF_METADATA)
    finally:
        plt.close(fig)
