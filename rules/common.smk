# Config validation, wildcard constraints and the small get_* helpers the
# rules share. Validation runs at start-up, before any job.
import os
import sys
from pathlib import Path

# Every job imports the library next to this Snakefile, whatever copy of nrf
# a virtual environment holds (an editable install of another clone, or a
# non-editable one): src/ goes first on this process's path and, through
# PYTHONPATH, on every job's, local, conda or cluster alike.
LIBRARY = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [LIBRARY] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)

from nrf.config import ConfigError, sessions_for, test_sessions, validate_config
from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key

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
MODELS = ["linear", "nrf"]


wildcard_constraints:
    dataset=DATASET,
    subject="|".join(SUBJECTS),
    model="|".join(MODELS),
    extractor=EXTRACTOR,


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


def scores(model):
    return [f"results/{DATASET}/scores/{model}/{s}.csv" for s in SUBJECTS]


def get_model_options(wildcards):
    return config["nrf"] if wildcards.model == "nrf" else {}


def get_train_options(wildcards):
    return config["train"] if wildcards.model == "nrf" else config["linear"]


def table_files(name):
    """The files one paper table is written to (CSV, Markdown, HTML)."""
    return [f"results/{DATASET}/tables/{name}.{ext}" for ext in ("csv", "md", "html")]


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


SHOTS = config["shots"]
# Table 4's N: the paper's 800, or the largest shot when the data are smaller.
TABLE4_N = min(config["ablations"]["finetune_n"], max(SHOTS))
ABLATION_MAX_STEPS = config["ablations"].get("max_steps", config["train"]["max_steps"])


def architecture_scores(axis):
    """Per-voxel scores of Table 5's depths (axis "depth") or Table 6's widths,
    the other size kept at the configured NRF's."""
    nrf = config["nrf"]
    values = config["ablations"][f"{axis}s"]
    pairs = [
        (v, nrf["width"]) if axis == "depth" else (nrf["depth"], v) for v in values
    ]
    return [
        f"results/{DATASET}/ablations/scores/nrf_depth{d}_width{w}.csv"
        for d, w in pairs
    ]


def figure_files(name):
    """The files one paper figure is written to (PNG, PDF)."""
    return [f"results/{DATASET}/figures/{name}.{ext}" for ext in ("png", "pdf")]


# Every table and figure the targets in the Snakefile build. Table 4 and
# Figure 4b/c transfer between two subjects, so they need two.
PAIRED = len(SUBJECTS) > 1
TABLES = table_files("table1")
TABLES += table_files("table4") if PAIRED else []
TABLES += table_files("table5") + table_files("table6")
FIGURES = []
FIGURES += figure_files("fig4") if PAIRED else []
