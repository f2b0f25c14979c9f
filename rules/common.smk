# Config validation, wildcard constraints and the small get_* helpers the
# rules share. Validation runs at start-up, before any job.
import sys
from pathlib import Path

# Every job imports the library next to this Snakefile, whatever copy of nrf
# a virtual environment holds (an editable install of another clone, or a
# non-editable one): src/ goes first on this process's path and, through
# PYTHONPATH, on every job's, local, conda or cluster alike.
LIBRARY = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY)

from nrf.runlog import export_library

export_library(LIBRARY)

from nrf.config import (
    ConfigError,
    sessions_for,
    test_sessions,
    training_images,
    validate_config,
)
from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key
from nrf.models.universal_options import universal_options

try:
    config.update(
        validate_config(
            config, Path(workflow.basedir) / "schemas" / "config.schema.yaml"
        )
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Shipped with the workflow, so found from any working directory.
PAPER_TABLES = str(Path(workflow.basedir) / "reference" / "nrf_paper_tables.csv")
DATASET = config["dataset"]
SUBJECTS = config["subjects"]
EXTRACTOR = config["features"]["extractor"]
# Encoders trained per subject by rules/encoders.smk, and the joint Universal
# encoder (one checkpoint for every subject; rules/encoders_extra.smk).
MODELS = ["linear", "nrf", "fwrf", "ridge", "universal", "universal_joint"]


wildcard_constraints:
    dataset=DATASET,
    subject="|".join(SUBJECTS),
    model="|".join(MODELS),
    extractor="|".join(sorted({EXTRACTOR, "alexnet"})),


def tree(key):
    """Path of an NSD-layout key inside this run's dataset tree."""
    return f"resources/{DATASET}/{key}"


def subject_volume_keys(subject):
    """Masks, ROI atlases and the MNI transform of one subject."""
    keys = {
        "brainmask": nsd_layout.brainmask(subject),
        "nsdgeneral": nsd_layout.roi(subject, "nsdgeneral"),
        "transform": nsd_layout.mni_transform(subject),
        "ncsnr": nsd_layout.ncsnr(subject),
    }
    keys.update(
        {atlas: nsd_layout.roi(subject, atlas) for atlas in nsd_layout.ROI_ATLASES}
    )
    return keys


def betas_format():
    """Real NSD betas arrive as compact nsdgeneral-only files (whatever their
    source, nsd.betas_source); a simulated tree is read from its NIfTI files."""
    return "compact" if DATASET == "nsd" else "nifti"


def betas_keys(subject):
    keys = [nsd_layout.betas(subject, s) for s in sessions_for(config, subject)]
    if betas_format() == "compact":
        keys = [compact_key(k) for k in keys]
    return keys


def stimuli_key():
    """The simulated tree holds its whole image brick; NSD's is read in part."""
    if DATASET == "nsd":
        return nsd_layout.STIMULI_SUBSET
    return nsd_layout.STIMULI


def simulated_outputs():
    """Every key the simulator writes for the configured subjects, but the
    expdesign file, which the rule names on its own."""
    keys = [nsd_layout.STIM_INFO, nsd_layout.STIMULI]
    for subject in SUBJECTS:
        keys += list(subject_volume_keys(subject).values())
        keys += betas_keys(subject)
    noiseless = [f"simulation/{s}_noiseless.hdf5" for s in SUBJECTS]
    return [f"resources/simulated/{k}" for k in keys + noiseless]


def get_tree_root(wildcards, input=None, output=None):
    """The dataset tree's root, read off the expdesign file a rule touches."""
    files = input if input else output
    return files.expdesign[: -len(nsd_layout.EXPDESIGN)].rstrip("/")


def get_download_root(wildcards, output):
    """resources/nsd, read off the file a download rule writes."""
    return output[0].split("nsddata")[0].rstrip("/")


def get_prepare_inputs(wildcards):
    inputs = {
        name: tree(key) for name, key in subject_volume_keys(wildcards.subject).items()
    }
    inputs["expdesign"] = tree(nsd_layout.EXPDESIGN)
    inputs["betas"] = [tree(k) for k in betas_keys(wildcards.subject)]
    return inputs


def get_sessions(wildcards):
    return sessions_for(config, wildcards.subject)


def get_expected_voxels(wildcards):
    """Real NSD voxel counts are asserted; a simulated tree has its own."""
    if DATASET == "nsd" and config["nsd"]["check_voxel_counts"]:
        return nsd_layout.NSD_NSDGENERAL_VOXELS.get(wildcards.subject)
    return None


def get_expected_test_images(wildcards):
    """NSD's 907 shared images seen by every subject are asserted when all of
    the first 30 sessions are read; a simulated tree has its own count."""
    if (
        DATASET == "nsd"
        and config["nsd"]["check_voxel_counts"]
        and config["test_images"] == "seen_by_all"
        and len(sessions_for(config, wildcards.subject)) >= test_sessions(config)
    ):
        return nsd_layout.NSD_TEST_IMAGES_SEEN_BY_ALL
    return None


def trials_per_session():
    if DATASET == "nsd":
        return config["nsd"]["trials_per_session"]
    return config["simulation"]["trials_per_session"]


def prepared(subject):
    return f"results/{DATASET}/prepared/{subject}.hdf5"


def features_file():
    return f"results/{DATASET}/features/{EXTRACTOR}.hdf5"


def model_features(model):
    """The feature cache a model reads: where the run uses pretrained networks
    (CLIP) fWRF reads AlexNet's, as the paper's appendix; otherwise (the
    weight-free filter bank) every model reads the run's extractor."""
    if model == "fwrf" and EXTRACTOR == "clip_vitb16":
        return f"results/{DATASET}/features/alexnet.hdf5"
    return features_file()


def get_model_features(wildcards):
    return model_features(wildcards.model)


def get_extractor_name(wildcards):
    return wildcards.extractor


def scores(model):
    return [f"results/{DATASET}/scores/{model}/{s}.csv" for s in SUBJECTS]


def get_model_options(wildcards):
    if wildcards.model == "universal":
        return universal_options(config["universal"])[0]
    return (
        config[wildcards.model] if wildcards.model in ("nrf", "fwrf", "ridge") else {}
    )


def get_train_options(wildcards):
    if wildcards.model == "universal":
        return universal_options(config["universal"])[1]
    if wildcards.model in ("fwrf", "ridge"):  # fit in closed form
        return {}
    return config["train"] if wildcards.model == "nrf" else config["linear"]


def table_files(name):
    """The files one paper table is written to (CSV, Markdown, HTML)."""
    return [f"results/{DATASET}/tables/{name}.{ext}" for ext in ("csv", "md", "html")]


# -- issue 9: peers of NRF, transfer, per-voxel tables (rules/encoders_extra.smk)
def universal_target():
    """The held-out subject of the transfer figure."""
    return config["universal"]["transfer_target"] or SUBJECTS[-1]


def noiseless(subject):
    return f"resources/simulated/simulation/{subject}_noiseless.hdf5"


def get_voxel_table_inputs(wildcards):
    inputs = {"prepared": prepared(wildcards.subject)}
    if DATASET == "simulated":
        inputs["noiseless"] = noiseless(wildcards.subject)
    return inputs


def get_heldout_prepared(wildcards):
    return [prepared(s) for s in SUBJECTS if s != wildcards.subject]


def get_transfer_options(wildcards):
    train = universal_options(config["universal"])[1]
    return {**train, "max_steps": config["universal"]["transfer_max_steps"]}


def transfer_scores_files(model):
    """Scores of ``model`` trained on N target images, for every shot and draw."""
    return [
        f"results/{DATASET}/subset_scores/{model}/{universal_target()}_n{n}_d{d}.csv"
        for n in config["shots"]
        for d in range(config["universal"]["transfer_draws"])
    ]


def voxel_tables():
    return [f"results/{DATASET}/voxels/{s}.csv" for s in SUBJECTS]


def retrieval(model):
    return [f"results/{DATASET}/retrieval/{model}/{s}.csv" for s in SUBJECTS]


def cluster_subjects():
    """The two subjects of the cluster figure (the first two configured)."""
    return SUBJECTS[:2]


def figure_files(name):
    """The files one figure is written to (PNG, PDF)."""
    return [f"results/{DATASET}/figures/{name}.{ext}" for ext in ("png", "pdf")]


# Every table and figure the targets in the Snakefile build.
TABLES = table_files("table1") + table_files("table_universal")
FIGURES = figure_files("fig_universal_transfer") + figure_files(
    "fig_universal_clusters"
)


# -- adaptation (rules/adaptation.smk) ------------------------------------------------
ADAPTATION = config["adaptation"]
SHOTS = config["shots"]
DRAWS = list(range(ADAPTATION["draws"]))
# The paper's adaptation tables and their target subjects (Tables 2, 7, 8, 9).
ADAPTATION_TABLES = {
    name: target
    for name, target in {
        "table2": "subj07",
        "table7": "subj01",
        "table8": "subj02",
        "table9": "subj05",
    }.items()
    if target in SUBJECTS and len(SUBJECTS) > 1
}


def adaptation_bases(subject):
    """Every other configured subject is a base of ``subject``."""
    return [s for s in SUBJECTS if s != subject]


def get_adaptation_base_names(wildcards):
    return adaptation_bases(wildcards.subject)


def get_adaptation_bases(wildcards):
    return {
        b: f"results/{DATASET}/models/nrf/{b}.pt"
        for b in adaptation_bases(wildcards.subject)
    }


def adaptation_cells(subject, ext="csv", shots=None):
    return [
        f"results/{DATASET}/adaptation/{subject}/n{n}_draw{d}.{ext}"
        for n in (SHOTS if shots is None else shots)
        for d in DRAWS
    ]


def full_training_images():
    """Training images of a full-data model (the x position of Figure 2a's last point)."""
    n = training_images(config)
    return int(n * (1 - config["val_fraction"])) if config["protocol"] == "clean" else n


def figure_shots():
    """The shot count nearest adaptation.figure_shots (Figure 2b, Table 3)."""
    return min(SHOTS, key=lambda n: abs(n - ADAPTATION["figure_shots"]))


def get_adaptation_target(wildcards):
    return ADAPTATION_TABLES[wildcards.table]


def get_adaptation_cell_files(wildcards):
    return adaptation_cells(wildcards.subject, ext="hdf5")


def adaptation_semantic(target):
    """The decoding scores of a target's cells (offline backend only; [] otherwise)."""
    if config["decoding"] != "offline":
        return []
    return [f"results/{DATASET}/decoding/offline/adaptation/{target}.csv"]


def get_adaptation_table_inputs(wildcards):
    target = ADAPTATION_TABLES[wildcards.table]
    return {
        "cells": adaptation_cells(target),
        "nrf_full": f"results/{DATASET}/scores/nrf/{target}.csv",
        "linear_full": f"results/{DATASET}/scores/linear/{target}.csv",
        "semantic": adaptation_semantic(target),
    }


if ADAPTATION_TABLES:
    TABLES += [f for name in ADAPTATION_TABLES for f in table_files(name)]
if "subj07" in ADAPTATION_TABLES.values():
    TABLES += table_files("table3")
FIG2 = []
if len(SUBJECTS) > 1:
    FIG2 += [f"results/{DATASET}/figures/fig2a.{ext}" for ext in ("png", "pdf")]
if "subj07" in SUBJECTS and len(SUBJECTS) > 1:
    FIG2 += [f"results/{DATASET}/figures/fig2b.{ext}" for ext in ("png", "pdf")]
FIGURES += FIG2


# -- Figure 4's probes and Tables 4-6 (rules/probes.smk, rules/ablations.smk)
def probe_subjects(probes, subjects):
    """(shuffle subject, base, target): the configured ones where they are run,
    else the first subject (shuffle, base) and the last other one (target)."""
    subject = probes["subject"] if probes["subject"] in subjects else subjects[0]
    base = probes["base"] if probes["base"] in subjects else subjects[0]
    others = [s for s in subjects if s != base]
    target = (
        probes["target"]
        if probes["target"] in others
        else (others[-1] if others else None)
    )
    return subject, base, target


PROBE_SUBJECT, PROBE_BASE, PROBE_TARGET = probe_subjects(config["probes"], SUBJECTS)


def get_probe_target(wildcards):
    """The target's prepared file; one subject alone has no target to transfer to."""
    if PROBE_TARGET is None:
        raise WorkflowError(
            "Figure 4b/c and Table 4 finetune one subject's NRF on another, but config key "
            f"'subjects' names one subject ({SUBJECTS[0]}): give at least two"
        )
    return prepared(PROBE_TARGET)


# Table 4's N: the paper's 800, or the largest shot when the data are smaller.
TABLE4_N = min(config["ablations"]["finetune_n"], max(SHOTS))
ABLATION_MAX_STEPS = config["ablations"].get("max_steps", config["train"]["max_steps"])


def architecture_scores(axis, suffix=".csv"):
    """Per-voxel scores of Table 5's depths (axis "depth") or Table 6's widths,
    the other size kept at the configured NRF's; suffix "_training.json" names
    how each of those trainings ended instead."""
    nrf = config["nrf"]
    values = config["ablations"][f"{axis}s"]
    pairs = [
        (v, nrf["width"]) if axis == "depth" else (nrf["depth"], v) for v in values
    ]
    return [
        f"results/{DATASET}/ablations/scores/nrf_depth{d}_width{w}{suffix}"
        for d, w in pairs
    ]


# Every table and figure the targets in the Snakefile build. Table 4 and
# Figure 4b/c transfer between two subjects, so they need two.
PAIRED = len(SUBJECTS) > 1
TABLES += table_files("table4") if PAIRED else []
TABLES += table_files("table5") + table_files("table6")
FIGURES += figure_files("fig4") if PAIRED else []
