"""Wall time and peak memory of the default `all` run, per rule.

Every job writes Snakemake's ``benchmark:`` TSV under
``benchmarks/runs/<rule>/<wildcards>.tsv`` (columns s, max_rss in MB, ...).
This script summarises them per rule (jobs, summed and longest wall time,
largest peak RSS) and names the slowest rules. With ``--run`` it first runs
the embedded default ``all`` from scratch in a fresh folder and times it.

    python benchmarks/default_run.py --run [--cores 2] [--out benchmarks/default_run.md]
    python benchmarks/default_run.py --run --target claims --configfile configs/claims.yaml
    python benchmarks/default_run.py --runs path/to/benchmarks/runs
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def per_job(runs: Path) -> pd.DataFrame:
    """One row per job: rule, job (the TSV's name: its wildcards), s, max_rss_mb."""
    rows = []
    for tsv in sorted(runs.rglob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t")
        rule = tsv.relative_to(runs).parts[0]
        for _, r in table.iterrows():
            rows.append({"rule": rule, "job": tsv.stem, "s": float(r["s"]),
                         "max_rss_mb": pd.to_numeric(r["max_rss"], errors="coerce")})
    if not rows:
        raise SystemExit(f"{runs}: no benchmark TSVs found")
    return pd.DataFrame(rows)


def per_rule(runs: Path) -> pd.DataFrame:
    """One row per rule: jobs, total_s, max_s, max_rss_mb; slowest (total) first."""
    jobs = per_job(runs)
    out = jobs.groupby("rule").agg(jobs=("job", "size"), total_s=("s", "sum"), max_s=("s", "max"),
                                   max_rss_mb=("max_rss_mb", "max"))
    return out.sort_values("total_s", ascending=False).reset_index()


def run_default(cores: int, target: str = "all", configfile: Path | None = None) -> tuple[Path, float, float]:
    """Run `snakemake <target>` on the embedded default (config.yaml, or ``configfile`` over it, e.g.
    configs/claims.yaml with target ``claims``) in a fresh folder; return (runs dir, wall seconds,
    CPU seconds: user + system of Snakemake and every job it started)."""
    work = Path(tempfile.mkdtemp(prefix=f"nrf-{target}-run-"))
    configs = [str(REPO / "config.yaml"), *([str(Path(configfile).resolve())] if configfile else [])]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", str(cores), target, "--configfile", *configs]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return work / "benchmarks" / "runs", wall, cpu


def calibrate(steps: int = 60) -> float:
    """Milliseconds of one default NRF training step (nrf_step_profile.faults_per_step), one thread, in a
    fresh process: the machine's speed at the time of a run. This 2-core machine's speed drifts 1.1-1.9x
    from hour to hour (benchmarks/default_run.md), so a run's wall time divided by this step time (before
    and after it, averaged) compares runs made at different hours."""
    code = ("import sys; sys.path.insert(0, {bench!r}); import torch; torch.set_num_threads(1); "
            "import nrf_step_profile as p; print(p.faults_per_step({steps})['ms'])").format(
        bench=str(REPO / "benchmarks"), steps=steps)
    if str(REPO / "src") not in sys.path:  # called before and after every run: put src/ there once
        sys.path.insert(0, str(REPO / "src"))
    from nrf.runlog import ALLOCATOR_SETTINGS  # as every job of the run gets them

    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, **ALLOCATOR_SETTINGS})
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "benchmarks" / "runs")
    parser.add_argument("--run", action="store_true", help="run the default `all` first, from scratch")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--target", default="all", help="with --run: the target (the claims run: claims)")
    parser.add_argument("--configfile", type=Path, help="with --run: a config file over config.yaml "
                                                         "(the claims run: configs/claims.yaml)")
    parser.add_argument("--slowest", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    wall = cpu = None
    if args.run:
        step_before = calibrate()
        args.runs, wall, cpu = run_default(args.cores, args.target, args.configfile)
        step_after = calibrate()
    table = per_rule(args.runs)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    what = f"`{args.target}`" + (f" with `{args.configfile}`" if args.configfile else "")
    lines = [f"{'Default ' if args.configfile is None else ''}{what} ({date}; {platform.machine()}, "
             f"{os.cpu_count()} CPUs visible, `--cores {args.cores}`), from `{args.runs}`.", ""]
    if wall is not None:
        lines += [f"Whole run, from scratch: **{wall / 60:.1f} min** wall time, {int(table.jobs.sum())} jobs, "
                  f"{cpu:,.0f} CPU-seconds (user + system, Snakemake and its jobs; "
                  f"sum of job wall times {table.total_s.sum() / 60:.1f} min).", "",
                  f"Machine speed (`calibrate`: one default NRF training step, one thread, alone): "
                  f"{step_before:.1f} ms before the run, {step_after:.1f} ms after; the wall time is "
                  f"**{wall / ((step_before + step_after) / 2e3):,.0f} steps' worth**, a figure that compares runs "
                  f"made at different hours.", ""]
    lines += ["| rule | jobs | total (s) | longest job (s) | peak RSS of a job (MB) |", "|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.total_s:.1f} | {r.max_s:.1f} | {r.max_rss_mb:,.0f} |")
    slow = table.head(args.slowest)
    share = slow.total_s.sum() / table.total_s.sum()
    lines += ["", f"Slowest rules: {', '.join(slow.rule)} ({share:.0%} of all job time)."]
    jobs = per_job(args.runs).sort_values("s", ascending=False).head(args.slowest)
    lines += ["Slowest jobs: " + ", ".join(f"{j.rule} {j.job} ({j.s:.0f} s)" for j in jobs.itertuples()) + "."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
