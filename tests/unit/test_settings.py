"""The settings table (nrf.reporting.settings, target ``settings``): the values
and sources it gives, and docs/FIDELITY.md checked against it, so the document
cannot drift from what an NSD run uses."""

import copy
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nrf.reporting import settings as S

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas" / "config.schema.yaml"
EMBEDDED = yaml.safe_load((REPO / "config.yaml").read_text())
NSD_PAPER = yaml.safe_load((REPO / "configs" / "nsd_paper.yaml").read_text())
FIDELITY = (REPO / "docs" / "FIDELITY.md").read_text()
PAPER_FILE = "config file configs/nsd_paper.yaml"
PRESET_NSD = "preset (presets.nsd)"


def _table(configfiles=(), command_line=None):
    return S.settings_table(copy.deepcopy(EMBEDDED), list(configfiles), command_line or {}, SCHEMA)


@pytest.fixture(scope="module")
def nsd_paper():
    """--configfile configs/nsd_paper.yaml"""
    return _table([("configs/nsd_paper.yaml", copy.deepcopy(NSD_PAPER))])[1]


@pytest.fixture(scope="module")
def nsd_cli():
    """--config dataset=nsd"""
    return _table(command_line={"dataset": "nsd"})[1]


@pytest.fixture(scope="module")
def simulated():
    """the embedded default"""
    return _table()[1]


def _one(rows: pd.DataFrame, experiment: str, setting: str) -> pd.Series:
    found = rows[(rows["experiment"] == experiment) & (rows["setting"] == setting)]
    assert len(found) == 1, f"{experiment} / {setting}: {len(found)} rows"
    return found.iloc[0]


# -- values and sources ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["nsd_paper", "nsd_cli"])
def test_both_nsd_configs_give_the_paper_sizes_and_schedules(which, request):
    rows = request.getfixturevalue(which)
    nrf = "NRF, full training"
    assert _one(rows, nrf, "train.batch_images")["value"] == "32"
    assert _one(rows, nrf, "train.batch_voxels")["value"] == "2000"
    assert float(_one(rows, nrf, "train.lr")["value"]) == pytest.approx(3e-4)
    assert (_one(rows, nrf, "nrf.depth")["value"], _one(rows, nrf, "nrf.width")["value"]) == ("8", "4096")
    ablations = "Tables 5-6 (depth, width)"
    assert _one(rows, ablations, "ablations.widths")["value"] == "[2048, 4096, 8192]"
    assert _one(rows, ablations, "ablations.depths")["value"] == "[4, 8, 16]"
    assert _one(rows, ablations, "ablations.max_steps")["value"] == "unset"  # no step cap: early stopping
    cap = _one(rows, ablations, "step cap")
    assert int(cap["value"]) >= S.NO_CAP_EPOCHS * 282 and cap["differs"] == "no"
    assert _one(rows, "adaptation finetune (Tables 2, 3, 7-9)", "eval_every per N")["value"] == "20: 1, 200: 7, 800: 25"
    assert _one(rows, "Universal, transfer", "universal.transfer_epochs")["value"] == "50"
    # every NSD difference from the paper or the authors is a documented one
    differing = rows[rows["differs"] == "yes"]
    assert not (differing["note"] == S.UNDOCUMENTED).any(), differing.to_string()
    assert not (differing["note"] == S.SIMULATED_NOTE).any()


def test_the_two_nsd_configs_give_the_same_values(nsd_paper, nsd_cli):
    merged = nsd_paper.merge(nsd_cli, on=["experiment", "setting"], suffixes=("_file", "_cli"), how="outer")
    assert len(merged) == len(nsd_paper) == len(nsd_cli)
    assert (merged["value_file"] == merged["value_cli"]).all()


def test_sources_name_the_layer_that_set_each_value(nsd_paper, nsd_cli, simulated):
    nrf = "NRF, full training"
    assert _one(nsd_paper, nrf, "train.lr")["source"] == PAPER_FILE
    assert _one(nsd_paper, nrf, "train.max_steps")["source"] == PRESET_NSD  # nsd_paper.yaml leaves it to the preset
    assert _one(nsd_paper, nrf, "train.compile")["source"] == S.SCHEMA_DEFAULT
    assert _one(nsd_cli, nrf, "train.lr")["source"] == PRESET_NSD
    assert _one(nsd_cli, "data and protocol", "dataset")["source"] == S.COMMAND_LINE
    assert _one(nsd_cli, "volumes", "volumes.test_images")["source"] == S.EMBEDDED
    sim = _one(simulated, nrf, "train.batch_voxels")
    assert (sim["value"], sim["source"]) == ("256", "preset (presets.simulated)")


def test_simulated_default_says_16_by_256_and_why_it_differs(simulated):
    nrf = "NRF, full training"
    assert _one(simulated, nrf, "train.batch_images")["value"] == "16"
    assert _one(simulated, nrf, "train.batch_voxels")["value"] == "256"
    for setting in ("train.batch_voxels", "nrf.width", "train.max_steps"):
        row = _one(simulated, nrf, setting)
        assert (row["differs"], row["note"]) == ("yes", S.SIMULATED_NOTE)
    assert not (simulated["note"] == S.UNDOCUMENTED).any()


def test_fwrf_rows_name_the_layers_and_why_the_simulated_penalties_differ(simulated, nsd_paper):
    lambdas = _one(simulated, "fWRF", "fwrf.lambdas")  # also fails if config.yaml's grid drifts from the note's
    assert lambdas["differs"] == "yes" and "either end" in lambdas["note"]
    assert _one(nsd_paper, "fWRF", "fwrf.lambdas")["differs"] == "no"
    assert _one(nsd_paper, "fWRF", "fwrf layers")["value"] == S.FWRF_LAYERS["alexnet"]
    assert _one(simulated, "fWRF", "fwrf layers")["value"] == S.FWRF_LAYERS["filterbank"]


def test_a_command_line_value_wins_and_an_undocumented_difference_is_flagged():
    # Snakemake hands nested --config values over as text ('train={lr: 0.001}')
    _, rows = _table([("configs/nsd_paper.yaml", copy.deepcopy(NSD_PAPER))],
                     {"train": {"lr": "0.001"}, "ablations": {"max_steps": "300"}})
    lr = _one(rows, "NRF, full training", "train.lr")
    assert (lr["value"], lr["source"], lr["differs"], lr["note"]) == ("0.001", S.COMMAND_LINE, "yes", S.UNDOCUMENTED)
    cap = _one(rows, "Tables 5-6 (depth, width)", "step cap")
    assert (cap["value"], cap["differs"], cap["note"]) == ("300", "yes", S.UNDOCUMENTED)
    assert S.COMMAND_LINE in cap["source"]
    page = S.to_markdown(rows, dataset="nsd", protocol="paper")
    assert "**yes**" in page and f"**{S.UNDOCUMENTED}**" in page and "| **0.001** |" in page
    undocumented = rows[rows["note"] == S.UNDOCUMENTED]
    assert set(undocumented["setting"]) == {"train.lr", "ablations.max_steps", "step cap"}
    assert f"{len(undocumented)} of them without a documented reason: " in page


def test_merge_layers_is_snakemakes_merge():
    from snakemake.utils import update_config

    layers = [EMBEDDED, NSD_PAPER, {"train": {"lr": "0.001"}, "presets": {"nsd": {"nrf": {"width": 8}}}}]
    expected = {}
    for layer in layers:
        update_config(expected, copy.deepcopy(layer))
    assert S.merge_layers(*layers) == expected


def test_build_settings_checks_the_config_snakemake_holds(tmp_path):
    paper_file = REPO / "configs" / "nsd_paper.yaml"
    config, _ = _table([("configs/nsd_paper.yaml", copy.deepcopy(NSD_PAPER))])
    kwargs = {"embedded_path": REPO / "config.yaml", "configfile_paths": [paper_file],
              "configfile_names": ["configs/nsd_paper.yaml"], "command_line": {}, "schema_path": SCHEMA,
              "out_csv": tmp_path / "settings.csv", "out_md": tmp_path / "settings.md"}
    written = S.build_settings(held_config=config, **kwargs)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "settings.csv", keep_default_na=False, dtype=str),
                                  written.astype(str))
    assert (tmp_path / "settings.md").read_text().startswith("# Settings: dataset nsd, protocol paper")
    held = copy.deepcopy(config)
    held["train"]["lr"] = 0.1  # a layer this module did not see
    with pytest.raises(ValueError, match="cannot be told"):
        S.build_settings(held_config=held, **kwargs)


def test_derived_schedules_are_the_experiments_own():
    # the table restates what nrf.experiments computes; torch is imported here only
    from nrf.experiments.ablations import capped
    from nrf.experiments.cell import schedule
    from nrf.experiments.transfer import transfer_schedule

    for config in (_table([("configs/nsd_paper.yaml", copy.deepcopy(NSD_PAPER))])[0], _table()[0]):
        epochs = S._epochs(config, config["shots"])
        for n in config["shots"]:
            assert epochs[n] == schedule("paper", n, config["train"], 10)["eval_every"]
            batch = config["universal"]["batch_images"]
            assert transfer_schedule(n, batch, 1)["eval_every"] == S._epochs({"train": {"batch_images": batch}}, [n])[n]
        cap = capped(config["train"], config["ablations"].get("max_steps"))["max_steps"]
        assert cap == S.derived(config)["ablation_max_steps"]


def test_the_module_imports_no_torch():
    code = "import sys, nrf.reporting.settings; sys.exit('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=False).returncode == 0


# -- docs/FIDELITY.md against the table ------------------------------------------------------


def _tables(markdown: str):
    """Every Markdown table of the page: (its heading, header cells, rows of cells)."""
    heading, found, lines = "", [], markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("# ").strip()
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1]):
            header = _cells(lines[i])
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            found.append((heading, header, rows))
            continue
        i += 1
    return found


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def _plain(text: str) -> str:
    return text.replace("`", "").replace("**", "").strip()


def _values(rows: pd.DataFrame, setting: str) -> set[str]:
    return set(rows.loc[rows["setting"] == setting, "value"])


def _number(text: str) -> float:
    return float(text.replace(",", ""))


TABLES = _tables(FIDELITY)
NSD_TABLE = next((t for t in TABLES if t[0].startswith("What an NSD run uses")), None)


@pytest.mark.parametrize("which", ["nsd_paper", "nsd_cli"])
def test_fidelity_nsd_settings_table_equals_what_runs(which, request):
    rows = request.getfixturevalue(which)
    assert NSD_TABLE is not None, "docs/FIDELITY.md lost its 'What an NSD run uses' table"
    _, header, body = NSD_TABLE
    col = {name: i for i, name in enumerate(header)}
    assert len(body) >= 30
    for cells in body:
        experiment, setting = cells[col["experiment"]], _plain(cells[col["setting"]])
        documented = _plain(cells[col["value on NSD"]])
        assert _one(rows, experiment, setting)["value"] == documented, (experiment, setting)


def _is_config_key(config: dict, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_key_value_fidelity_states_for_nsd_equals_what_runs(nsd_paper):
    """`key: value` in the tables' "ours" and "config key" columns, for every key
    of the config (a column about the simulated preset is skipped; `a | b` lists
    choices, not a value; a bare name such as `precision: fp32` is prose)."""
    config = _table([("configs/nsd_paper.yaml", copy.deepcopy(NSD_PAPER))])[0]
    checked = []
    for heading, header, body in TABLES:
        columns = [i for i, h in enumerate(header)
                   if (h.startswith("ours") or h == "config key") and "simulated" not in h]
        for cells in body:
            for i in columns:
                for key, text in re.findall(r"`([A-Za-z_]\w*(?:\.\w+)*): ([^`]+)`", cells[i]):
                    if "|" in text or not _is_config_key(config, key):
                        continue
                    values = _values(nsd_paper, key)
                    assert values, f"FIDELITY.md ({heading}, {cells[0]}) names {key}, which the settings table lacks"
                    assert values == {S.format_value(yaml.safe_load(text))}, (heading, cells[0], key, text, values)
                    checked.append(key)
    assert {"features.clip_layers", "protocol", "test_images"} <= set(checked), checked


#: rows of FIDELITY.md's Universal table ("ours, nsd preset" column): a pattern
#: whose groups are, in order, the values of these settings
UNIVERSAL_ROWS = {
    "Projected channels C": (r"^([\d,]+)", ["universal.channels"]),
    "Voxel embedding E": (r"^([\d,]+)", ["universal.embedding_dim"]),
    "Batch": (r"([\d,]+) images × ([\d,]+) voxels", ["universal.batch_images", "universal.batch_voxels"]),
    "Optimiser": (r"lr ([\d.e-]+)", ["universal.lr"]),
    "Loss": (r"MSE − ([\d.]+)", ["universal.alpha"]),
    "After pooling": (r"Dropout\(([\d.]+)\)", ["universal.dropout"]),
    "Schedule": (r"patience (\d+)", ["universal.patience"]),
    "Length": (r"`max_steps` ([\d,]+) = \d+ × `eval_every` ([\d,]+)", ["universal.max_steps", "universal.eval_every"]),
    "Transfer": (r"`transfer_epochs` \((\d+)\)", ["universal.transfer_epochs"]),
}


def test_fidelity_universal_table_equals_what_runs(nsd_paper):
    table = next((t for t in TABLES if any("nsd preset" in h for h in t[1])), None)
    assert table is not None, "docs/FIDELITY.md lost the Universal table's nsd column"
    _, header, body = table
    col = next(i for i, h in enumerate(header) if "nsd preset" in h)
    by_label = {cells[0]: cells[col] for cells in body}
    for label, (pattern, settings) in UNIVERSAL_ROWS.items():
        assert label in by_label, f"the Universal table lost its row {label!r}"
        match = re.search(pattern, by_label[label])
        assert match, f"{label}: {by_label[label]!r} no longer states {settings}"
        for setting, text in zip(settings, match.groups()):
            value = _one(nsd_paper, "Universal, single subject" if "transfer" not in setting else "Universal, transfer",
                         setting)["value"]
            assert math.isclose(_number(value), _number(text)), (label, setting, text, value)


def test_fidelity_scratch_cap_on_nsd_equals_what_runs(nsd_paper):
    adaptation = next(t for t in TABLES if t[0] == "The adaptation experiments")
    row = next(cells for cells in adaptation[2] if cells[0] == "Scratch at N")
    match = re.search(r"on NSD it is ([\d,]+)", " ".join(row))
    assert match, row
    assert _number(_one(nsd_paper, "adaptation scratch", "adaptation.scratch_steps")["value"]) == _number(match[1])


def test_the_probes_own_draws_and_shuffle_sizes_are_shown_where_set():
    _, rows = _table(command_line={"probes": {"draws": "5", "shuffle_nrf": {"width": "512"}}})
    assert (_one(rows, "Figure 4a (shuffle)", "draws")["value"],
            _one(rows, "Figure 4b/c (ROI transfer)", "draws")["value"]) == ("5", "5")
    width = _one(rows, "Figure 4a (shuffle)", "nrf.width")
    assert (width["value"], width["source"]) == ("512", S.COMMAND_LINE)
    assert _one(rows, "Figure 4a (shuffle)", "nrf.depth")["source"] == "preset (presets.simulated)"
    assert _one(rows, "NRF, full training", "nrf.width")["value"] == "128"
    assert _one(rows, "adaptation finetune (Tables 2, 3, 7-9)", "adaptation.draws")["value"] == "2"
