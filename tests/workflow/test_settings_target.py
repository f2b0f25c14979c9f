"""Target `settings` (issue 21): results/{dataset}/settings.{md,csv}, built
offline by one job; both ways of asking for NSD show the paper's sizes and
schedules, the simulated default says what it shrank and why."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nrf.reporting.settings import COMMAND_LINE, SIMULATED_NOTE, UNDOCUMENTED

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow
NRF = "NRF, full training"
ABLATIONS = "Tables 5-6 (depth, width)"


def snakemake(workdir, *args, timeout=600):
    # the target before --config/--configfile, which take every later argument
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _settings(workdir, dataset) -> pd.DataFrame:
    assert (workdir / f"results/{dataset}/settings.md").read_text().startswith(f"# Settings: dataset {dataset}")
    return pd.read_csv(workdir / f"results/{dataset}/settings.csv", dtype=str, keep_default_na=False)


def _value(rows, experiment, setting, column="value"):
    found = rows.loc[(rows["experiment"] == experiment) & (rows["setting"] == setting), column]
    assert len(found) == 1, (experiment, setting)
    return found.iloc[0]


def _only_settings_ran(workdir):
    assert not (workdir / "resources").exists()  # nothing downloaded or simulated
    assert sorted(p.name for p in (workdir / "logs").iterdir()) == ["build_settings"]


@pytest.mark.parametrize("config", [["--configfile", str(REPO / "configs/nsd_paper.yaml")],
                                    ["--config", "dataset=nsd"]], ids=["nsd_paper.yaml", "dataset=nsd"])
def test_settings_on_nsd_show_the_paper_sizes_and_schedules(tmp_path, config):
    result = snakemake(tmp_path, "settings", *config)
    assert result.returncode == 0, result.stderr[-3000:]
    _only_settings_ran(tmp_path)
    rows = _settings(tmp_path, "nsd")
    assert (_value(rows, NRF, "train.batch_images"), _value(rows, NRF, "train.batch_voxels")) == ("32", "2000")
    assert float(_value(rows, NRF, "train.lr")) == pytest.approx(3e-4)
    assert (_value(rows, NRF, "nrf.depth"), _value(rows, NRF, "nrf.width")) == ("8", "4096")
    assert _value(rows, ABLATIONS, "ablations.widths") == "[2048, 4096, 8192]"
    assert _value(rows, ABLATIONS, "ablations.max_steps") == "unset"  # no step cap: early stopping
    assert _value(rows, ABLATIONS, "step cap", "differs") == "no"
    assert _value(rows, "adaptation finetune (Tables 2, 3, 7-9)", "adaptation.finetune_steps", "differs") == "no"
    assert _value(rows, "Universal, single subject", "universal.batch_voxels") == "5000"
    assert not (rows["note"] == UNDOCUMENTED).any(), rows[rows["note"] == UNDOCUMENTED].to_string()
    source = _value(rows, NRF, "train.batch_voxels", "source")
    assert source == ("config file configs/nsd_paper.yaml" if "--configfile" in config else "preset (presets.nsd)")


def test_settings_on_the_simulated_default_say_16_by_256(tmp_path):
    result = snakemake(tmp_path, "settings")
    assert result.returncode == 0, result.stderr[-3000:]
    _only_settings_ran(tmp_path)
    rows = _settings(tmp_path, "simulated")
    assert (_value(rows, NRF, "train.batch_images"), _value(rows, NRF, "train.batch_voxels")) == ("16", "256")
    assert _value(rows, NRF, "train.batch_voxels", "note") == SIMULATED_NOTE
    assert _value(rows, NRF, "train.batch_voxels", "source") == "preset (presets.simulated)"
    # on demand: `all` does not build it
    plan = snakemake(tmp_path, "-n", "all")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "build_settings" not in plan.stdout and "train_encoder" in plan.stdout


def test_a_command_line_value_is_named_and_a_change_rebuilds_the_table(tmp_path):
    result = snakemake(tmp_path, "settings", "--config", "dataset=nsd", "train={lr: 0.001}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _settings(tmp_path, "nsd")
    assert _value(rows, NRF, "train.lr") == "0.001"
    assert _value(rows, NRF, "train.lr", "source") == COMMAND_LINE
    assert (_value(rows, NRF, "train.lr", "differs"), _value(rows, NRF, "train.lr", "note")) == ("yes", UNDOCUMENTED)
    again = snakemake(tmp_path, "settings", "--config", "dataset=nsd")
    assert again.returncode == 0, again.stderr[-3000:]
    assert float(_value(_settings(tmp_path, "nsd"), NRF, "train.lr")) == pytest.approx(3e-4)
