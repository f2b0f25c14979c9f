"""nrf.reporting.style: one display name and colour per method, the same in every figure,
and save_figure's byte-stable PNG and PDF."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from nrf import perturbations  # noqa: E402
from nrf.experiments import methods  # noqa: E402
from nrf.experiments.methods import ENSEMBLE, LINEAR, SCRATCH, base_label  # noqa: E402
from nrf.reporting import style  # noqa: E402
from nrf.reporting.figure2 import figure2a  # noqa: E402
from nrf.reporting.figure4 import figure4  # noqa: E402
from nrf.reporting.universal import UNIVERSAL_TRANSFER, transfer_figure  # noqa: E402

MODEL_KEYS = ("nrf", "linear", "fwrf", "ridge", "universal", "universal_joint", "measured")
METHOD_LABELS = tuple(v for k, v in vars(methods).items() if k.isupper() and isinstance(v, str))
CONDITIONS = tuple(getattr(perturbations, k) for k in ("INTACT", "GLOBAL", "WITHIN_ROI", "ALIGNED", "SHIFTED"))


def test_every_method_key_has_a_name_and_one_okabe_ito_colour():
    keys = MODEL_KEYS + METHOD_LABELS + CONDITIONS + (UNIVERSAL_TRANSFER, base_label("subj01", "subj07"))
    assert len(METHOD_LABELS) >= 5
    for key in keys:
        look = style.style(key)
        assert look.name and look.colour in style.OKABE_ITO.values(), key
        assert style.colour(key) == look.colour and style.display_name(key) == look.name
    assert style.display_name("ridge") == "Ridge (per-voxel CV)"
    assert style.display_name("universal_joint") == "Universal (all subjects)"
    assert style.display_name(base_label("subj01", "subj07")) == "NRF finetune base subj01 → subj07"
    # one method under two keys (all-data point of Figure 2a) is one colour
    assert style.colour("nrf") == style.colour(SCRATCH) and style.colour("linear") == style.colour(LINEAR)
    with pytest.raises(KeyError, match="no display name"):
        style.style("something new")


@pytest.mark.parametrize("figure", sorted(style.FIGURE_METHODS))
def test_colours_are_distinct_within_each_figure(figure):
    keys = style.FIGURE_METHODS[figure]
    assert len({style.colour(k) for k in keys}) == len(keys), figure
    assert len({style.display_name(k) for k in keys}) == len(keys), figure


def test_style_imports_no_torch():
    code = "import sys, nrf.reporting.style; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _lines(fig) -> dict[str, str]:
    """{legend label: colour} of every labelled line (errorbar lines included) in a figure."""
    out = {}
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels):
            line = handle.lines[0] if hasattr(handle, "lines") else handle  # an errorbar's data line
            out[label] = to_hex(line.get_color()).upper()
    return out


def test_a_method_has_the_same_colour_in_every_figure(rng):
    table = pd.DataFrame([{"method": m, "n_train": n, "mean": rng.uniform(0, 0.5), "sem": 0.01, "n_subjects": 2}
                          for m in (SCRATCH, LINEAR) for n in ("20", "200", "full")])
    fig2a = _lines(figure2a(table, n_full=900, dataset="simulated", protocol="paper"))
    points = pd.DataFrame([{"method": m, "n_train": n, "draw": d, "median_r": rng.uniform(0, 0.5)}
                           for m in (UNIVERSAL_TRANSFER, SCRATCH, ENSEMBLE, LINEAR) for n in (20, 200) for d in (0, 1)])
    transfer = transfer_figure(points, target="subj07", dataset="simulated")
    transfer_lines = _lines(transfer)
    probe = pd.DataFrame([{"panel": p, "subject": "subj01", "condition": c, "n_train": n, "draw": d,
                           "pearson": rng.uniform(0, 0.5), "mse": 0.3, "steps": 5, "n_voxels": 10}
                          for p, conds in (("a", CONDITIONS[:3]), ("EBA", CONDITIONS[3:])) for c in conds
                          for n in (20, 200) for d in (0, 1)])
    fig4 = _lines(figure4(probe, dataset="simulated", protocol="paper"))
    for method in (SCRATCH, LINEAR):
        name = style.display_name(method)
        assert fig2a[name] == style.colour(method)
        assert [c for label, c in transfer_lines.items() if label.startswith(name)] == [style.colour(method)]
    assert {label.rsplit(" (", 1)[0] for label in transfer_lines} == {
        style.display_name(m) for m in style.FIGURE_METHODS["fig_universal_transfer"]}
    for condition in CONDITIONS:
        assert fig4[style.display_name(condition)] == style.colour(condition)
    # the transfer figure's x axis: a tick at each N, plain numbers, no minor labels
    ax = transfer.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20", "200"]
    assert not [t for t in ax.get_xminorticklabels() if t.get_text()]
    plt.close("all")


def test_transfer_draws_error_bars_only_with_two_draws(rng):
    points = pd.DataFrame([{"method": UNIVERSAL_TRANSFER, "n_train": 20, "draw": 0, "median_r": 0.1}]
                          + [{"method": SCRATCH, "n_train": 20, "draw": d, "median_r": r}
                             for d, r in ((0, 0.2), (1, 0.4))])
    fig = transfer_figure(points, target="subj07", dataset="simulated")
    containers = {c.get_label(): c for c in fig.axes[0].containers}
    universal = next(c for label, c in containers.items() if label.startswith(style.display_name(UNIVERSAL_TRANSFER)))
    scratch = next(c for label, c in containers.items() if label.startswith("NRF scratch"))
    assert not universal.has_yerr and scratch.has_yerr
    (segments,) = [s.get_segments() for s in scratch.lines[2]]
    assert np.ptp(segments[0][:, 1]) == pytest.approx(2 * 0.1)  # ± SEM = std/sqrt(2) = 0.1
    assert "1 draw, no error bar" in universal.get_label() and "± SEM over 2 draws" in scratch.get_label()
    plt.close(fig)


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [1, 4, 2], color=style.colour(SCRATCH), label=style.display_name(SCRATCH))
    ax.imshow(np.arange(12.0).reshape(3, 4), extent=(1, 2, 1, 2))
    ax.set_title("λ ± → −")
    ax.legend()
    return fig


def test_save_figure_writes_the_same_bytes_twice(tmp_path):
    first = _figure()
    style.save_figure(first, tmp_path / "a.png", tmp_path / "a.pdf")
    style.save_figure(_figure(), tmp_path / "b.png", tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    pdf = (tmp_path / "a.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf and b"Producer" not in pdf
    assert b"Matplotlib" not in pdf  # no version string either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png", "b.pdf", "b.png"]  # no temporaries
    assert matplotlib.image.imread(tmp_path / "a.png").shape[:2] == (2 * style.DPI, 3 * style.DPI)
    assert first.number not in plt.get_fignums()  # closed


def test_save_figure_leaves_no_file_when_drawing_fails(tmp_path):
    fig = _figure()
    fig.axes[0].set_title("$\\unknowncommand$")  # mathtext fails when drawn
    with pytest.raises(ValueError):
        style.save_figure(fig, tmp_path / "x.png", tmp_path / "x.pdf")
    assert list(tmp_path.iterdir()) == []


def test_save_figure_embeds_a_surface_sized_collection_as_an_image_in_the_pdf(tmp_path):
    """A collection of more than RASTER_PATHS paths (a brain surface's triangles)
    goes into the PDF as one image; a small one stays vector; the PNG is unchanged
    and both files are still the same bytes on a rebuild."""
    from matplotlib.collections import PolyCollection

    def figure(n):
        fig, ax = plt.subplots(figsize=(2, 2))
        rng = np.random.default_rng(0)
        ax.add_collection(PolyCollection(rng.random((n, 3, 2)), array=rng.random(n)))
        return fig

    big = style.RASTER_PATHS + 1
    style.save_figure(figure(big), tmp_path / "big.png", tmp_path / "big.pdf")
    style.save_figure(figure(big), tmp_path / "again.png", tmp_path / "again.pdf")
    style.save_figure(figure(50), tmp_path / "small.png", tmp_path / "small.pdf")
    reference = figure(big)
    reference.savefig(tmp_path / "plain.png", format="png", dpi=style.DPI, metadata=style.PNG_METADATA)
    plt.close(reference)
    assert (tmp_path / "big.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    assert (tmp_path / "big.pdf").read_bytes() == (tmp_path / "again.pdf").read_bytes()
    assert b"/Subtype /Image" in (tmp_path / "big.pdf").read_bytes()
    assert b"/Subtype /Image" not in (tmp_path / "small.pdf").read_bytes()
    # drawn as paths the big one would hold every triangle; as an image it is far smaller
    assert (tmp_path / "big.pdf").stat().st_size < 20 * (tmp_path / "small.pdf").stat().st_size
