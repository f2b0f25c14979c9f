"""The claims page: one row per claim of the paper, with this run's verdict.

Each claim reads the table CSVs a run wrote under ``results/{dataset}/``
(tables/*.csv, figures/fig2a.csv, figures/fig4.csv) and compares the numbers
the paper compares. A verdict is decided with the run's own spread: a
difference ``d`` with standard error ``s`` (over subjects, targets or draws,
whichever the table holds; see each claim) is

    holds                      d points the paper's way by more than 2 s
    reversed                   d points the other way by more than 2 s
    undecided (within 2 SEM)   |d| <= 2 s
    undecided (no spread)      s is unknown (one training per row, one draw)

An equality claim (the paper: "as good as") holds when ``|d| <= 2 s`` and
``differs`` otherwise. A claim with several comparisons (several N, several
baselines) combines them: all hold -> holds; all reversed -> reversed; some
hold and some reversed -> mixed; otherwise "partly holds (k of n)",
"partly reversed (k of n)" or undecided. A table that is missing is "not run";
the page builds from whatever tables exist, and reads only small CSVs.

The paper's numbers come from ``reference/nrf_paper_tables.csv``; claims the
paper makes only in a figure (2a, 4) say so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nrf.experiments.methods import AVERAGE, ENSEMBLE, LINEAR, SCRATCH
from nrf.frames import read_frame, write_frame
from nrf.reporting.format import _write_atomic, to_html

HOLDS = "holds"
REVERSED = "reversed"
UNDECIDED = "undecided (within 2 SEM)"
NO_SPREAD = "undecided (no spread)"
DIFFERS = "differs"
MIXED = "mixed"
NOT_RUN = "not run"
K_SEM = 2.0

#: the adaptation tables and their targets (rules/common.smk's ADAPTATION_TABLES)
ADAPTATION_TABLES = {"table2": "subj07", "table7": "subj01", "table8": "subj02", "table9": "subj05"}
# the probe conditions (nrf.perturbations; literal here so the page imports no scipy)
INTACT, GLOBAL, WITHIN_ROI, ALIGNED, SHIFTED = ("coordinates intact", "shuffled globally", "shuffled within ROI",
                                                "aligned", "shifted")


# -- verdicts ---------------------------------------------------------------------------
@dataclasses.dataclass
class Comparison:
    """One difference the paper's claim predicts: ``diff`` = a − b, its SEM and what the paper expects
    (+1: a above b; 0: a equal to b)."""

    label: str
    diff: float
    sem: float
    expect: int = 1
    detail: str = ""

    @property
    def verdict(self) -> str:
        return decide(self.diff, self.sem, self.expect)

    def text(self) -> str:
        sem = "no SEM" if not np.isfinite(self.sem) else f"± {self.sem:.3f}"
        return f"{self.label}: {self.diff:+.3f} {sem}" + (f" ({self.detail})" if self.detail else "")


def decide(diff: float, sem: float, expect: int = 1, k: float = K_SEM) -> str:
    """The verdict on one difference (see the module docstring)."""
    if diff is None or not np.isfinite(diff):
        return NOT_RUN
    if sem is None or not np.isfinite(sem):
        return NO_SPREAD
    within = abs(diff) <= k * sem
    if expect == 0:
        return HOLDS if within else DIFFERS
    if within:
        return UNDECIDED
    return HOLDS if np.sign(diff) == np.sign(expect) else REVERSED


def combine(verdicts: list[str]) -> str:
    """One verdict from several comparisons' (see the module docstring)."""
    run = [v for v in verdicts if v != NOT_RUN]
    if not run:
        return NOT_RUN
    n, held = len(run), sum(v == HOLDS for v in run)
    against = sum(v in (REVERSED, DIFFERS) for v in run)
    if held == n:
        return HOLDS
    if against == n:
        return REVERSED if all(v == REVERSED for v in run) else DIFFERS
    if held and against:
        return MIXED
    if held:
        return f"partly holds ({held} of {n})"
    if against:
        return f"partly {'reversed' if REVERSED in run else 'differs'} ({against} of {n})"
    return NO_SPREAD if all(v == NO_SPREAD for v in run) else UNDECIDED


@dataclasses.dataclass
class Finding:
    """What one run says about one claim."""

    comparisons: list[Comparison]
    numbers: str = ""
    missing: str = ""  # what was not found, when nothing was
    note: str = ""  # a sentence that qualifies the numbers (a step cap, a fallback)
    limit: str = ""  # where more draws would not decide it: what bounds the difference instead

    @property
    def verdict(self) -> str:
        if not self.comparisons:
            return NOT_RUN
        return combine([c.verdict for c in self.comparisons])


def not_run(what: str) -> Finding:
    return Finding([], missing=what)


# -- reading a run's tables --------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Results:
    """A run's ``results/{dataset}`` folder, and the files in it (relative paths) that the
    run's config builds: the page reads no others, so a table left there by another
    config cannot decide a claim. ``files`` None: any file present (another run's folder)."""

    root: Path
    files: frozenset[str] | None = None

    def find(self, rel: str) -> Path | None:
        path = self.root / rel
        return path if path.is_file() and (self.files is None or rel in self.files) else None

    def glob(self, pattern: str) -> list[Path]:
        return [p for p in sorted(self.root.glob(pattern))
                if self.files is None or p.relative_to(self.root).as_posix() in self.files]


def _folder(results) -> Results | None:
    return results if results is None or isinstance(results, Results) else Results(Path(results))


def _read(results, rel: str) -> pd.DataFrame | None:
    """A table of ``results`` (a :class:`Results` or a folder), None where the run did not build it."""
    results = _folder(results)
    path = None if results is None else results.find(rel)
    if path is None:
        return None
    # a table that exists but fails its checksum or does not parse is corrupt, not "not run"
    return read_frame(path, "table", dtype={"train_images": str})


def _sem(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else math.nan


def _hypot(*sems) -> float:
    """The SEM of a difference of independent means."""
    return float(np.sqrt(np.sum(np.square(sems))))


def _n_key(n) -> float:
    return math.inf if str(n) == "full" else float(n)


# -- the paper's numbers -------------------------------------------------------------
class Paper:
    """The paper's Pearson r (median over voxels) from reference/nrf_paper_tables.csv."""

    def __init__(self, paper_csv):
        rows = read_frame(paper_csv, "paper")
        self.rows = rows[rows["metric"] == "pearson"]

    def r(self, table: str, method: str, train_images: str | None = None) -> float:
        sel = self.rows[(self.rows["table"] == table) & (self.rows["method"] == method)]
        if train_images is not None:
            sel = sel[sel["train_images"].astype(str) == str(train_images)]
        return float(sel["value"].iloc[0]) if len(sel) else math.nan


# -- the claims ------------------------------------------------------------------------
@dataclasses.dataclass
class Claim:
    key: str
    title: str
    statement: str  # the paper's claim, in a sentence
    paper_numbers: Callable[[Paper], str]
    evaluate: Callable[[Results], Finding]
    source: str  # the tables read


def _baselines(results) -> Finding:
    t = _read(results, "tables/table1.csv")
    if t is None:
        return not_run("tables/table1.csv")
    t = t.set_index("method")
    if "NRF" not in t.index:
        return not_run("table1's NRF row")
    subjects = [c[len("pearson_"):] for c in t.columns
                if c.startswith("pearson_subj")]
    comps, numbers = [], [f"NRF {t.at['NRF', 'pearson_mean']:.3f}"]
    for base in ("Linear Regression", "fWRF"):
        if base not in t.index or not np.isfinite(t.at[base, "pearson_mean"]):
            continue
        numbers.append(f"{base} {t.at[base, 'pearson_mean']:.3f}")
        if len(subjects) > 1:
            d = np.array([t.at["NRF", f"pearson_{s}"] - t.at[base, f"pearson_{s}"] for s in subjects], float)
            comps.append(Comparison(f"NRF − {base}", float(d.mean()), _sem(d),
                                    detail=f"paired over {len(subjects)} subjects"))
        else:
            comps.append(Comparison(f"NRF − {base}", t.at["NRF", "pearson_mean"] - t.at[base, "pearson_mean"],
                                    math.nan, detail="one subject"))
    return Finding(comps, numbers=", ".join(numbers) + " (median voxel r, mean over subjects)")


def _adaptation(results) -> dict[str, pd.DataFrame]:
    out = {}
    for name, target in ADAPTATION_TABLES.items():
        t = _read(results, f"tables/{name}.csv")
        if t is not None and {"train_images", "method", "pearson_mean"} <= set(t.columns):
            out[str(t["target"].iloc[0]) if "target" in t.columns and len(t) else target] = t
    return out


def _cell(t: pd.DataFrame, n, method) -> tuple[float, float]:
    sel = t[(t["train_images"].astype(str) == str(n)) & (t["method"] == method)]
    if sel.empty:
        return math.nan, math.nan
    sem = sel["pearson_sem"].iloc[0] if "pearson_sem" in sel else math.nan
    return float(sel["pearson_mean"].iloc[0]), float(sem)


def _across_targets(tables: dict[str, pd.DataFrame], n, a: str, b: str, label: str) -> Comparison | None:
    """a − b at N, paired over targets (SEM over targets); with one target, over its draws."""
    diffs, sems, means_a, means_b = [], [], [], []
    for t in tables.values():
        (ma, sa), (mb, sb) = _cell(t, n, a), _cell(t, n, b)
        if np.isfinite(ma) and np.isfinite(mb):
            diffs.append(ma - mb)
            sems.append(_hypot(sa, sb))
            means_a.append(ma)
            means_b.append(mb)
    if not diffs:
        return None
    detail = f"{np.mean(means_a):.3f} vs {np.mean(means_b):.3f}"
    if len(diffs) > 1:
        return Comparison(label, float(np.mean(diffs)), _sem(diffs), detail=detail + f"; over {len(diffs)} targets")
    return Comparison(label, diffs[0], sems[0], detail=detail + "; one target, SEM over draws")


def _shots(tables) -> list[str]:
    ns = set()
    for t in tables.values():
        ns |= {str(n) for n in t["train_images"] if str(n) != "full"}
    return sorted(ns, key=_n_key)


def _low_data(results) -> Finding:
    tables = _adaptation(results)
    shots = _shots(tables)
    if shots:
        n = shots[0]
        c = _across_targets(tables, n, SCRATCH, LINEAR, f"NRF scratch − linear at N = {n}")
        if c is not None:
            return Finding([c], numbers=c.text())
    fig = _read(results, "figures/fig2a.csv")
    if fig is None:
        return not_run("tables/table{2,7,8,9}.csv and figures/fig2a.csv")
    fig = fig[fig["n_train"].astype(str) != "full"]
    if fig.empty:
        return not_run("fig2a's few-image points")
    n = min(fig["n_train"].astype(str), key=_n_key)
    at = fig[fig["n_train"].astype(str) == n].set_index("method")
    if not {SCRATCH, LINEAR} <= set(at.index):
        return not_run(f"fig2a's NRF scratch and linear points at N = {n}")
    c = Comparison(f"NRF scratch − linear at N = {n}", at.at[SCRATCH, "mean"] - at.at[LINEAR, "mean"],
                   _hypot(at.at[SCRATCH, "sem"], at.at[LINEAR, "sem"]),
                   detail=f"{at.at[SCRATCH, 'mean']:.3f} vs {at.at[LINEAR, 'mean']:.3f}; fig2a, SEMs over subjects")
    return Finding([c], numbers=c.text(), note="from fig2a.csv (unpaired SEM)")


def _transfer(results) -> Finding:
    tables = _adaptation(results)
    comps = [c for n in _shots(tables)
             if (c := _across_targets(tables, n, ENSEMBLE, SCRATCH, f"ensemble − scratch at N = {n}")) is not None]
    if not comps:
        return not_run("tables/table{2,7,8,9}.csv")
    return Finding(comps, numbers="; ".join(c.text() for c in comps))


def _ensemble_average(results) -> Finding:
    t = _read(results, "tables/table3.csv")
    if t is None:
        return not_run("tables/table3.csv")
    n = str(t["train_images"].iloc[0])
    (ma, sa), (me, se) = _cell(t, n, AVERAGE), _cell(t, n, ENSEMBLE)
    if not (np.isfinite(ma) and np.isfinite(me)):
        return not_run("table3's average and ensemble rows")
    c = Comparison(f"average − ensemble at N = {n}", ma - me, _hypot(sa, se),
                   detail=f"{ma:.3f} vs {me:.3f}; SEMs over draws, unpaired")
    return Finding([c], numbers=c.text())


def _fig4(results, panel_is_shuffle: bool) -> Finding:
    t = _read(results, "figures/fig4.csv")
    if t is None:
        return not_run("figures/fig4.csv")
    t = t[(t["panel"] == "a") == panel_is_shuffle]
    if t.empty:
        return not_run("fig4's " + ("shuffle panel" if panel_is_shuffle else "shift panels"))
    comps, global_drops = [], {}  # global_drops: N -> intact − shuffled globally (the shuffle panel)
    for panel, part in t.groupby("panel", sort=True):
        idx = part.set_index(["condition", "n_train"])
        ref, others = (INTACT, (GLOBAL, WITHIN_ROI)) if panel_is_shuffle else (ALIGNED, (SHIFTED,))
        for n in sorted(part["n_train"].unique(), key=_n_key):
            for other in others:
                if (ref, n) not in idx.index or (other, n) not in idx.index:
                    continue
                a, b = idx.loc[(ref, n)], idx.loc[(other, n)]
                label = f"{ref} − {other} at N = {n}" if panel_is_shuffle else f"{panel}: {ref} − {other} at N = {n}"
                comps.append(Comparison(
                    label, float(a["pearson_mean"] - b["pearson_mean"]),
                    _hypot(a["pearson_sem"], b["pearson_sem"]),
                    detail=f"{a['pearson_mean']:.3f} vs {b['pearson_mean']:.3f}, {int(a['n_draws'])} draws"))
                if other == GLOBAL:
                    global_drops[n] = comps[-1]
    if not comps:
        return not_run("fig4's conditions")
    if panel_is_shuffle:
        comps += _low_n_drop(global_drops)
    numbers = "; ".join(c.text() for c in comps)
    if panel_is_shuffle:
        fit_numbers, fit_note = _identity_fit(results)
        return Finding(comps, numbers=numbers + (f"; {fit_numbers}" if fit_numbers else ""), note=fit_note)
    intervals = " equal within ±2 SEM where undecided: " + "; ".join(
        f"{c.label.split(':')[0]} at N = {c.label.split(' = ')[-1]}: [{c.diff - K_SEM * c.sem:+.3f}, "
        f"{c.diff + K_SEM * c.sem:+.3f}]"
        for c in comps if c.verdict == UNDECIDED)
    return Finding(comps, numbers=numbers,
                   note=intervals.strip() if intervals.strip() != "equal within ±2 SEM where undecided:" else "")


def _low_n_drop(drops: dict) -> list[Comparison]:
    """The paper's "dropped sharply in low-data regimes": the global shuffle's drop at the smallest N
    above its drop at the largest (``drops``: N -> intact − shuffled globally; independent cells: SEMs
    combined); none with one N."""
    if len(drops) < 2:
        return []
    n_low, n_high = min(drops, key=_n_key), max(drops, key=_n_key)
    low, high = drops[n_low], drops[n_high]
    return [Comparison(f"drop at N = {n_low} − drop at N = {n_high} (global shuffle)",
                       low.diff - high.diff, _hypot(low.sem, high.sem),
                       detail=f"{low.diff:+.3f} vs {high.diff:+.3f}")]


#: the shuffle probe's fit tables (nrf.experiments.probes.FIT_COLUMNS), written where probes.shuffle_nrf is set
FIT_GLOB = "probes/shuffle/n*_fit.csv"
FIT_LINEAR = "Linear Regression"


def _identity_fit(results) -> tuple[str, str]:
    """Whether the shuffle probe's NRF can learn each voxel's identity from its coordinate: at the largest
    N, the NRF trained on globally shuffled coordinates against the voxel-wise linear baseline on the test
    images, paired over draws (numbers, and a sentence for the note); ("", "") where the run wrote no fit
    tables. Shuffled coordinates carry no smoothness, so an NRF that still matches a model with weights of
    its own for every voxel has told the voxels apart by their coordinates; the fit to the training images
    with intact coordinates cannot show it (a smooth model fits them well without telling voxels apart),
    and is given for reference."""
    results = _folder(results)
    if results is None:
        return "", ""
    # checked (checksum, columns, finiteness): a corrupt fit table stops the page and names the file
    parts = [t for t in (read_frame(path, "shuffle_fit") for path in results.glob(FIT_GLOB)) if len(t)]
    if not parts:
        return "", ""
    t = pd.concat(parts, ignore_index=True)
    n = int(t["n_train"].max())
    t = t[t["n_train"] == n]
    nrf = t[t["model"] == "NRF"]

    def by_draw(rows, column):
        return rows.set_index("draw")[column]

    shuffled = by_draw(nrf[nrf["condition"] == GLOBAL], "test_pearson")
    lin = by_draw(t[t["model"] == FIT_LINEAR], "test_pearson")
    draws = shuffled.index.intersection(lin.index)
    if draws.empty:
        return "", ""
    d = (shuffled[draws] - lin[draws]).to_numpy(float)
    c = Comparison("NRF shuffled globally − voxel-wise linear, test r", float(d.mean()), _sem(d), expect=0)
    intact = nrf[nrf["condition"] == INTACT]
    size = (f"width {int(intact['width'].iloc[0])}, Fourier scale {float(intact['fourier_scale'].iloc[0]):g}"
            if {"width", "fourier_scale"} <= set(intact.columns) and len(intact) else "")
    train_fit = (f"; fit to the training images: NRF intact {intact['train_pearson'].mean():.3f}, linear "
                 f"{t[t['model'] == FIT_LINEAR]['train_pearson'].mean():.3f}" if len(intact) else "")
    numbers = (f"voxel identity at N = {n}" + (f" ({size})" if size else "")
               + f": test r of NRF shuffled globally {shuffled[draws].mean():.3f}, voxel-wise linear "
               + f"{lin[draws].mean():.3f}" + train_fit
               + f" (median voxel r, mean over {len(draws)} draws; {c.text()})")
    if not np.isfinite(c.sem):
        note = "one draw of the identity test: whether the NRF can learn voxel identity is not decided"
    elif c.diff >= -K_SEM * c.sem:
        note = (f"with shuffled coordinates the shuffle probe's NRF predicts the test images as well as the "
                f"voxel-wise linear model at N = {n} (or better): it learns each voxel's response from an "
                "arbitrary coordinate, so the shuffle tests the value of the coordinates, not the model's capacity")
    else:
        share = shuffled[draws].mean() / lin[draws].mean() if lin[draws].mean() > 0 else np.nan
        note = (f"with shuffled coordinates the shuffle probe's NRF falls {-c.diff:.3f} below the voxel-wise "
                f"linear model on the test images at N = {n} ({share:.0%} of its r; beyond 2 SEM): it does not "
                "learn each voxel's identity from its coordinate as well as a model with weights of its own for "
                f"every voxel, so the shuffle's cost at N = {n} measures, at least in part, the model's capacity")
    return numbers, note


def _architecture(results, name: str, axis: str, best: int) -> Finding:
    t = _read(results, f"tables/{name}.csv")
    if t is None:
        return not_run(f"tables/{name}.csv")
    if axis not in t.columns or t.empty:
        return not_run(f"{name}'s {axis} column")
    t = t.sort_values(axis)
    values = dict(zip(t[axis].astype(int), t["pearson_mean"].astype(float)))
    sems = dict(zip(t[axis].astype(int), t["pearson_sem"].astype(float) if "pearson_sem" in t else [math.nan] * len(t)))
    # the paper's best row, or the run's row of the same rank when the sizes were scaled down
    # (as nrf.reporting.ablation_tables.paper_rows_for: by label when the run has the paper's sizes)
    ranked = sorted(values)
    theirs = {"depth": [4, 8, 16], "width": [2048, 4096, 8192]}[axis]
    mid = best if ranked == theirs else (ranked[theirs.index(best)] if len(ranked) == len(theirs) else None)
    if mid is None:
        return not_run(f"{name}: {axis}s matching the paper's three")
    seeds = int(t["n_seeds"].max()) if "n_seeds" in t.columns and t["n_seeds"].notna().any() else None
    detail = "" if seeds is None else f"SEM over {seeds} seeds, unpaired"
    comps = [Comparison(f"{axis} {mid} − {axis} {v}", values[mid] - values[v], _hypot(sems[mid], sems[v]),
                        detail=detail)
             for v in ranked if v != mid]
    numbers = ", ".join(f"{axis} {v}: {values[v]:.3f}" for v in ranked)
    notes = []
    if seeds is not None:
        numbers = (", ".join(f"{axis} {v}: {values[v]:.3f} ± {sems[v]:.3f}" for v in ranked)
                   + f" (mean ± SEM over {seeds} seeds); " + "; ".join(c.text() for c in comps))
        undecided = [c for c in comps if c.verdict == UNDECIDED]
        if undecided:
            notes.append("equal within ±2 SEM: " + "; ".join(
                f"{c.label}: [{c.diff - K_SEM * c.sem:+.3f}, {c.diff + K_SEM * c.sem:+.3f}]" for c in undecided))
    if "improving_at_cap" in t.columns:
        rising = t.loc[t["improving_at_cap"].astype(str) == "True", axis].astype(int).tolist()
        if rising:
            notes.append(f"still improving at the step cap: {axis} {', '.join(map(str, rising))}")
    return Finding(comps, numbers=numbers, note="; ".join(notes))


def _strategy(results) -> Finding:
    t = _read(results, "tables/table4.csv")
    if t is None:
        return not_run("tables/table4.csv")
    t = t.set_index("method")
    need = {"finetune both", "finetune image block only", "finetune MLP only"}
    if not need <= set(t.index):
        return not_run("table4's three strategies")
    m = {k: (float(t.at[k, "pearson_mean"]), float(t.at[k, "pearson_sem"])) for k in need}
    n = int(t["n_train"].iloc[0]) if "n_train" in t.columns else "?"
    both, image, mlp = m["finetune both"], m["finetune image block only"], m["finetune MLP only"]
    comps = [
        Comparison(f"both − image block only (N = {n})", both[0] - image[0], _hypot(both[1], image[1])),
        Comparison(f"MLP only − both (N = {n})", mlp[0] - both[0], _hypot(mlp[1], both[1]), expect=0),
    ]
    return Finding(comps, numbers=f"both {both[0]:.3f}, image block only {image[0]:.3f}, MLP only {mlp[0]:.3f}; "
                                  + "; ".join(c.text() for c in comps))


def _resolution(results) -> Finding:
    t = _read(results, "tables/table_resolution.csv")
    if t is None:
        return not_run("tables/table_resolution.csv")
    idx = t.set_index(["model", "method"])
    if ("NRF", "queried") not in idx.index:
        return not_run("table_resolution's NRF queried row")
    q = idx.loc[("NRF", "queried")]
    comps = []
    for model, method in (("Linear", "trilinear"), ("Linear", "nearest"), ("NRF", "trilinear")):
        if (model, method) in idx.index:
            o = idx.loc[(model, method)]
            comps.append(Comparison(f"NRF queried − {model} {method}", float(q["r_mean"] - o["r_mean"]),
                                    _hypot(q["r_sem"], o["r_sem"]), expect=1 if model == "Linear" else 0,
                                    detail=f"{q['r_mean']:.3f} vs {o['r_mean']:.3f}"))
    return Finding(comps, numbers="; ".join(c.text() for c in comps) + " (r with the truth between voxels, "
                                  "SEM over points)")


def _continuous(results) -> Finding:
    t = _read(results, "tables/continuous_space.csv")
    if t is None:
        return not_run("tables/continuous_space.csv")
    need = {"field", "fine_scale_mm", "method", "seed", "gap_vs_trilinear", "gap_sem"}
    if not need <= set(t.columns):
        return not_run("continuous_space's paired gaps")
    t = t.dropna(subset=["gap_vs_trilinear"])
    if t.empty:
        return not_run("continuous_space's paired gaps")
    # the finest field the run built (the smooth field if it built no fine one)
    fine = t["fine_scale_mm"].dropna()
    part = t[t["fine_scale_mm"] == fine.min()] if len(fine) else t
    comps = []
    for method, rows in part.groupby("method", sort=True):
        gap = rows["gap_vs_trilinear"].to_numpy(float)
        # SEM over seeds; with one seed, over the held-out points (the experiment's paired SEM)
        sem = _sem(gap) if len(gap) > 1 else float(rows["gap_sem"].iloc[0])
        comps.append(Comparison(f"{method} − its own voxel predictions trilinear, {rows['field'].iloc[0]}",
                                float(gap.mean()), sem,
                                detail=f"{len(gap)} seed(s)" + ("" if len(gap) > 1 else ", SEM over points")))
    return Finding(comps, numbers="; ".join(c.text() for c in comps),
                   limit=_code_limit(part, float(fine.min()) if len(fine) else None))


def _code_limit(part: pd.DataFrame, fine_mm: float | None) -> str:
    """Why more seeds would not decide the continuous row where the NRF's coordinate code is coarser
    than the field's fine structure (its sinusoids' wavelengths, nrf.models.nrf.code_wavelengths_mm,
    all above twice the length scale); "" where the table does not record the code, or it is fine enough."""
    column = "code_wavelength_min_mm"
    if fine_mm is None or column not in part.columns or not part[column].notna().any():
        return ""
    shortest, median = float(part[column].min()), float(part["code_wavelength_median_mm"].median())
    if shortest <= 2 * fine_mm:
        return ""
    return (f"more seeds would not change it: the NRF's coordinate code has wavelengths of {shortest:.0f} mm and "
            f"longer (median {median:.0f} mm), far above the field's {fine_mm:g} mm structure, so an NRF with this "
            "code has little to hold that structure between its voxels with; a finer code (a larger "
            "nrf.fourier_scale) could, at the cost of the smoothness prior that Figure 4a's probe shows")


def _mean_of(paper: Paper, tables, method, n) -> float:
    vals = [paper.r(t, method, n) for t in tables]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def claims() -> list[Claim]:
    """The paper's claims, in the paper's order."""
    adapt = ("table2", "table7", "table8", "table9")
    return [
        Claim("baselines", "NRF above the baselines (Table 1)",
              "NRF predicts held-out responses better than Linear Regression and fWRF (median voxel r).",
              lambda p: f"NRF {p.r('table1', 'NRF'):.3f}, Linear Regression {p.r('table1', 'Linear Regression'):.3f}, "
                        f"fWRF {p.r('table1', 'fWRF'):.3f}",
              _baselines, "tables/table1.csv"),
        Claim("low_data", "Low-data advantage (Figure 2a)",
              "Trained from scratch on few images, NRF beats the linear baseline.",
              lambda p: "NRF scratch at N = 20: " + ", ".join(
                  f"{p.r(t, SCRATCH, '20'):.3f} ({ADAPTATION_TABLES[t]})" for t in adapt)
                        + "; linear at small N only in Figure 2a (not tabulated)",
              _low_data, "tables/table{2,7,8,9}.csv, else figures/fig2a.csv"),
        Claim("transfer", "Transfer above scratch (Tables 2, 7-9)",
              "Finetuning other subjects' NRFs (ensembled) beats NRF from scratch at every N.",
              lambda p: "; ".join(f"N = {n}: ensemble {_mean_of(p, adapt, ENSEMBLE, n):.3f} vs scratch "
                                  f"{_mean_of(p, adapt, SCRATCH, n):.3f}" for n in ("20", "200", "800"))
                        + " (mean of 4 targets)",
              _transfer, "tables/table{2,7,8,9}.csv"),
        Claim("ensemble_average", "Ensemble against the average (Table 3)",
              "At N = 200 the simple average of the finetuned bases beats the least-squares ensemble "
              "(the paper reports it against its own method).",
              lambda p: f"average {p.r('table3', AVERAGE, '200'):.3f} vs ensemble {p.r('table3', ENSEMBLE, '200'):.3f}",
              _ensemble_average, "tables/table3.csv"),
        Claim("shuffle", "Coordinate shuffle (Figure 4a)",
              "NRF trained with shuffled coordinates (globally or within ROIs) falls below intact coordinates, "
              "most in the low-data regime.",
              lambda p: "Figure 4a only (not tabulated): intact above both shuffles, the drop sharpest at low N",
              lambda r: _fig4(r, True), "figures/fig4.csv (panel a)"),
        Claim("mni_shift", "MNI shift (Figure 4b/c)",
              "Finetuning on an ROI's voxels at their own coordinates beats the same voxels shifted in MNI.",
              lambda p: "Figure 4b/c only (not tabulated): aligned above shifted for EBA and V1",
              lambda r: _fig4(r, False), "figures/fig4.csv (ROI panels)"),
        Claim("depth", "MLP depth (Table 5)",
              "Depth 8 is best; depth matters little (the rows span 0.011 in r).",
              lambda p: ", ".join(f"depth {d}: {p.r('table5', f'NRF depth {d}'):.3f}" for d in (4, 8, 16)),
              lambda r: _architecture(r, "table5", "depth", 8), "tables/table5.csv"),
        Claim("width", "Hidden width (Table 6)",
              "Width 4096 is best; width matters little (the rows span 0.007 in r).",
              lambda p: ", ".join(f"width {w}: {p.r('table6', f'NRF width {w}'):.3f}" for w in (2048, 4096, 8192)),
              lambda r: _architecture(r, "table6", "width", 4096), "tables/table6.csv"),
        Claim("strategy", "Finetune strategy (Table 4)",
              "Finetuning the image block alone falls far below finetuning both blocks; the MLP alone matches both.",
              lambda p: f"both {p.r('table4', 'finetune both'):.3f}, image block only "
                        f"{p.r('table4', 'finetune image block only'):.3f}, "
                        f"MLP only {p.r('table4', 'finetune MLP only'):.3f}",
              _strategy, "tables/table4.csv"),
        Claim("resolution", "Resolution-agnostic (between the voxels)",
              "NRF, a function of continuous MNI coordinates, can be queried at any resolution (qualitative; "
              "here: queried between the training voxels it beats the linear baseline interpolated, and "
              "matches its own voxel predictions interpolated).",
              lambda p: "qualitative (no table in the paper)",
              _resolution, "tables/table_resolution.csv"),
        Claim("continuous", "Structure finer than the voxels (continuous space)",
              "Not claimed by the paper; implied by 'continuous': an NRF queried between voxels holds more than "
              "its voxel predictions interpolated (finest simulated field; pooled subjects' offset grids).",
              lambda p: "not tested in the paper",
              _continuous, "tables/continuous_space.csv"),
    ]


# -- reasons -----------------------------------------------------------------------------
def reason(claim: Claim, finding: Finding) -> str:
    """One sentence where a run's verdict is not the paper's ("holds"); empty otherwise."""
    v = finding.verdict
    if v == HOLDS:
        return finding.note and f"Holds; {finding.note}."
    if v == NOT_RUN:
        return f"Not built in this run ({finding.missing})."
    comps = finding.comparisons
    if v == NO_SPREAD or all(c.verdict == NO_SPREAD for c in comps):
        extra = f"; {finding.note}" if finding.note else ""
        return ("One training per row, so the run has no spread to judge differences of "
                + ", ".join(f"{c.diff:+.3f}" for c in comps) + f" with (seed replicates would){extra}.")
    against = [c for c in comps if c.verdict in (REVERSED, DIFFERS)]
    if against:
        c = max(against, key=lambda c: abs(c.diff) / max(c.sem, 1e-12))
        what = "differ by" if c.expect == 0 else "point the other way by"
        extra = f"; {finding.note}" if finding.note else ""
        return (f"{c.label} {what} {c.diff:+.3f}, beyond 2 SEM ({K_SEM * c.sem:.3f}) of the run's spread"
                f"{extra}.")
    undecided = [c for c in comps if c.verdict == UNDECIDED]
    if undecided:
        c = max(undecided, key=lambda c: K_SEM * c.sem)
        extra = f"; {finding.note}" if finding.note else ""
        decide = finding.limit or "more draws or subjects would decide them"
        return (f"{len(undecided)} of {len(comps)} differences lie within 2 SEM (e.g. {c.label}: {c.diff:+.3f} "
                f"within ±{K_SEM * c.sem:.3f}); {decide}{extra}.")
    return finding.note


# -- the page ------------------------------------------------------------------------------
def claim_rows(paper_csv, run_results, claims_results=None, run_files=None) -> pd.DataFrame:
    """One row per claim: the paper's statement and numbers; per run its verdict, numbers and
    reason. ``run_results`` / ``claims_results``: a run's ``results/{dataset}`` folder (None: absent);
    ``run_files``: the files of ``run_results`` (relative to it) that its config builds, the only ones
    read (None: any present)."""
    paper = Paper(paper_csv)
    run = None if run_results is None else Results(
        Path(run_results), None if run_files is None else frozenset(Path(f).as_posix() for f in run_files))
    other = None if claims_results is None else Results(Path(claims_results))
    rows = []
    for c in claims():
        row = {"claim": c.key, "title": c.title, "paper_statement": c.statement,
               "paper_numbers": c.paper_numbers(paper), "source": c.source}
        for prefix, results in (("run", run), ("claims", other)):
            f = c.evaluate(results) if results is not None else not_run("no results folder given")
            row[f"{prefix}_verdict"] = f.verdict
            row[f"{prefix}_numbers"] = f.numbers
            row[f"{prefix}_reason"] = reason(c, f) or ""
        rows.append(row)
    return pd.DataFrame(rows)


def _shown(rows: pd.DataFrame, with_claims: bool) -> pd.DataFrame:
    shown = pd.DataFrame({
        "Claim": rows["title"],
        "The paper": rows["paper_statement"] + " — " + rows["paper_numbers"],
        "This run": rows["run_verdict"],
        "This run's numbers": rows["run_numbers"],
        "Why (this run)": rows["run_reason"],
    })
    if with_claims:
        shown["Claims run"] = rows["claims_verdict"]
        shown["Claims run's numbers"] = rows["claims_numbers"]
        shown["Why (claims run)"] = rows["claims_reason"]
    return shown


def write_claims(*, paper_csv, run_results, out_csv, out_md, out_html, claims_results=None, run_files=None,
                 dataset: str = "simulated") -> pd.DataFrame:
    """The claims page as CSV, Markdown and HTML (nrf.reporting.format.to_html); ``run_files``
    as :func:`claim_rows`."""
    rows = claim_rows(paper_csv, run_results, claims_results, run_files)
    with_claims = claims_results is not None
    shown = _shown(rows, with_claims)
    title = "The paper's claims, decided by this run"
    note = (f"Dataset: **{dataset}**. A verdict compares the difference the paper's claim predicts with the run's "
            f"own spread (SEM over subjects, targets or draws, as each row's numbers say): **holds** / **reversed** "
            f"beyond {K_SEM:g} SEM, **undecided** within it; an equality claim holds within {K_SEM:g} SEM and "
            "**differs** beyond. A missing table is **not run**. The paper's numbers: reference/nrf_paper_tables.csv "
            "(real NSD, CLIP features); a simulated run tests the direction of each claim, not its values."
            + ("" if with_claims else " No claims run was given (configs/claims.yaml)."))
    write_frame(rows, out_csv, "table", float_format=None)
    md = shown.copy()
    for col in md.columns:
        md[col] = md[col].astype(str).str.replace("|", "\\|", regex=False)
    _write_atomic(out_md, f"# {title}\n\n{md.to_markdown(index=False)}\n\n{note}\n")
    _write_atomic(out_html, to_html(shown, title=title, note=note))
    return rows
