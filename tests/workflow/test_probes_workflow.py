"""The probe and ablation targets plan only their own subtrees (issue 8, item 7)."""

import pytest
import yaml
from test_pipeline import TINY, _planned_jobs, snakemake

pytestmark = pytest.mark.workflow
PREPARE = {"simulate_dataset": 1, "extract_features": 1}


def _plan(tmp_path, *targets):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(tmp_path, *targets, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    return _planned_jobs(result.stdout + result.stderr)


def test_fig4_plans_only_its_subtree(tmp_path):
    # TINY runs subj01 and subj02 with one shot: subj01 is shuffled and is the base,
    # subj02 (subj07 is not configured) the target. The shuffle probe's intact arm
    # is subj01's adaptation cells' NRF scratch (one experiment trained once), so
    # those 2 cells (2 draws) and their base, subj02's NRF, are in the subtree; the
    # target's ROI voxels outside nsdgeneral are prepared for 4b/c (whole-brain regions)
    assert _plan(tmp_path, "fig4") == {
        **PREPARE, "prepare_subject": 2, "train_encoder": 2, "adapt_cell": 2, "probe_shuffle": 1,
        "prepare_probe_rois": 1, "probe_transfer": 1, "build_fig4": 1, "fig4": 1,
    }


def test_ablation_tables_plan_only_their_subtrees(tmp_path):
    # TINY's NRF is depth 2, width 32: depths [2, 3] and widths [16, 32] share (2, 32);
    # Table 4 finetunes subj01's full-data NRF on subj02; its "finetune both" rows are
    # read from subj02's 2 adaptation cells (one experiment trained once)
    assert _plan(tmp_path, "table4", "table5", "table6") == {
        **PREPARE, "prepare_subject": 2, "train_encoder": 1, "adapt_cell": 2, "ablation_finetune_strategy": 1,
        "build_table4": 1,
        "ablation_architecture": 3, "build_table5": 1, "build_table6": 1, "table4": 1, "table5": 1, "table6": 1,
        "paper_tables": 1,  # the paper's numbers, copied into the run once
    }
