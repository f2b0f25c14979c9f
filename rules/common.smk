# Config validation, wildcard constraints and the small get_* helpers the
# rules share. Validation runs at start-up, before any job.
import sys
from pathlib import Path

# The library in src/ is importable here whether or not it was pip-installed;
# rule scripts find it through the link workflow_scripts/nrf (Snakemake puts
# a script's folder on its path), so conda and cluster jobs need no install.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from nrf.config import ConfigError, sessions_for, validate_config
from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key

try:
    config.update(validate_config(config))
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
