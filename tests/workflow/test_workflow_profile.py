"""The workflow profile (profiles/default/ next to the Snakefile) applies to every run."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from tiny_workflow import TINY  # noqa: E402
from tiny_workflow import run_snakemake as snakemake  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_runs_use_the_greedy_scheduler_from_the_workflow_profile(tmp_path):
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    # the ILP's per-decision CBC solves cost the jobs CPU; so did the scheduler's one-second timers
    assert profile == {"scheduler": "greedy", "max-jobs-per-timespan": "1000/5s"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(tmp_path, "table1", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "workflow specific profile" in out and "profiles/default" in out, out[-2000:]
