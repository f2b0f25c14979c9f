"""Every figure of the tiny workflow, built through its named target: a PDF beside each
PNG, the same bytes when the figure rules run again, and each method in one colour in
every figure (nrf.reporting.style).

The shared tiny run (conftest.py) has subj01 and subj02; Figure 2b needs subj07, so it is
built in a second folder on the same config with subj07 in place of subj02.
"""

import glob
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from tiny_workflow import TINY, run_snakemake  # noqa: E402

from nrf.frames import read_frame  # noqa: E402
from nrf.reporting import style  # noqa: E402
from nrf.reporting.figure2 import figure2a, figure2b  # noqa: E402
from nrf.reporting.figure3 import figure3  # noqa: E402
from nrf.reporting.figure4 import figure4, read_rows  # noqa: E402
from nrf.reporting.universal import transfer_figure  # noqa: E402

pytestmark = pytest.mark.workflow

#: the figure targets the shared tiny config builds, each written to figures/<target>.png/.pdf
FIGURES = ("fig2a", "fig3", "fig4", "fig_volume", "fig_universal_transfer", "fig_universal_clusters")
FIG2B_CONFIG = {**TINY, "subjects": ["subj01", "subj07"]}
FIGURE_DIR = "results/simulated/figures"


def _figure_bytes(workdir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / FIGURE_DIR).glob("*")) if p.suffix in (".png", ".pdf")}


def _build_twice(workdir, targets) -> tuple[dict, dict]:
    """The figure files after building ``targets``, and after forcing their rules to run again."""
    result = run_snakemake(workdir, *targets)
    assert result.returncode == 0, result.stderr[-4000:]
    first = _figure_bytes(workdir)
    # targets first: --forcerun takes every name after it
    result = run_snakemake(workdir, *targets, "--forcerun", *[f"build_{t}" for t in targets])
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = re.findall(r"^localrule (\S+):|^rule (\S+):", result.stdout + result.stderr, flags=re.M)
    ran = {a or b for a, b in jobs}
    assert {f"build_{t}" for t in targets} <= ran, ran  # each figure was drawn again
    return first, _figure_bytes(workdir)


@pytest.fixture(scope="module")
def built(tiny_run):
    return (tiny_run, *_build_twice(tiny_run, FIGURES))


@pytest.fixture(scope="module")
def built_fig2b(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_fig2b")
    (workdir / "config.yaml").write_text(yaml.safe_dump(FIG2B_CONFIG))
    return (workdir, *_build_twice(workdir, ["fig2b"]))


def test_every_figure_target_writes_png_and_pdf(built, built_fig2b):
    for (workdir, first, _), targets in ((built, FIGURES), (built_fig2b, ["fig2b"])):
        for target in targets:
            assert first[f"{target}.png"].startswith(b"\x89PNG"), target
            assert first[f"{target}.pdf"].startswith(b"%PDF"), target
        pngs = {n[:-4] for n in first if n.endswith(".png")}
        assert pngs == {n[:-4] for n in first if n.endswith(".pdf")}, "a PNG without its PDF, or the reverse"
    # the contrast figure sits with its maps under volumes/: its PDF twin too
    contrast = built[0] / "results/simulated/volumes/subj01"
    assert (contrast / "face_vs_place.png").read_bytes().startswith(b"\x89PNG")
    assert (contrast / "face_vs_place.pdf").read_bytes().startswith(b"%PDF")


def test_a_rebuilt_figure_is_the_same_bytes(built, built_fig2b):
    for workdir, first, second in (built, built_fig2b):
        assert sorted(first) == sorted(second)
        changed = [name for name in first if first[name] != second[name]]
        assert not changed, f"rebuilding changed {changed}"
        pdf = first[next(n for n in first if n.endswith(".pdf"))]
        assert b"CreationDate" not in pdf and b"Producer" not in pdf


def _known_name(text: str) -> str | None:
    """The display name a title or legend label starts with (the longest one), if any."""
    text = text.replace("\n", " ")
    names = sorted({s.name for s in style.STYLES.values()}, key=len, reverse=True)
    return next((n for n in names if text.startswith(n)), None)


def _colours(fig) -> list[tuple[str, str]]:
    """(display name, colour) of every method a figure draws: legend entries (line or
    errorbar), framed image columns (Figure 3) and coloured titles (Figure 2b)."""
    found = []
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels):
            line = handle.lines[0] if hasattr(handle, "lines") else handle
            if _known_name(label):
                found.append((_known_name(label), to_hex(line.get_color())))
        if _known_name(ax.get_title()) and ax.spines["top"].get_linewidth() > 1:
            found.append((_known_name(ax.get_title()), to_hex(ax.spines["top"].get_edgecolor())))
    for text in fig.texts:
        if _known_name(text.get_text()):
            found.append((_known_name(text.get_text()), to_hex(text.get_color())))
    plt.close(fig)
    return found


def test_each_method_has_one_colour_in_every_figure(built, built_fig2b):
    run, fig2b_run = built[0], built_fig2b[0]
    results = run / "results/simulated"
    drawn = {}
    table = read_frame(run / FIGURE_DIR / "fig2a.csv", "table", dtype={"n_train": str})
    drawn["fig2a"] = _colours(figure2a(table, n_full=TINY["simulation"]["n_train_images"], dataset="simulated",
                                       protocol="paper"))
    points = read_frame(run / FIGURE_DIR / "fig_universal_transfer.csv", "table")
    drawn["fig_universal_transfer"] = _colours(transfer_figure(points, target="subj02", dataset="simulated"))
    probes = sorted(glob.glob(str(results / "probes/*/n*.csv")))
    drawn["fig4"] = _colours(figure4(read_rows(probes), dataset="simulated", protocol="paper"))
    recons = {p.split("/")[-2]: p for p in sorted(glob.glob(str(results / "decoding/offline/*/subj01.hdf5")))
              if p.split("/")[-2] in style.FIGURE_METHODS["fig3"]}  # not the decoder beside them
    stimuli = run / "resources/simulated/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
    drawn["fig3"] = _colours(figure3(recons, stimuli, rows=TINY["decoder"]["figure_images"], subject="subj01",
                                     backend="offline"))
    cells = sorted(glob.glob(str(fig2b_run / "results/simulated/adaptation/subj07/n20_draw*.hdf5")))
    drawn["fig2b"] = _colours(figure2b(cells, fig2b_run / "results/simulated/prepared/subj07.hdf5", n_train=20,
                                       dataset="simulated", protocol="paper"))
    # every figure shows the methods it should, each in its colour, and no colour twice
    for figure, pairs in drawn.items():
        expected = {style.display_name(k): style.colour(k).lower() for k in style.FIGURE_METHODS[figure]}
        if figure == "fig3":
            expected = {n: c for n, c in expected.items() if n in {style.display_name(s) for s in recons}}
        assert dict(pairs) == expected, figure
        assert len(set(dict(pairs).values())) == len(dict(pairs)), figure
    # and one method is one colour across figures
    by_name = {}
    for pairs in drawn.values():
        for name, colour in pairs:
            by_name.setdefault(name, set()).add(colour)
    assert all(len(colours) == 1 for colours in by_name.values()), by_name
    assert {"NRF scratch", "Linear Regression", "NRF finetune ensemble"} <= set(by_name)
