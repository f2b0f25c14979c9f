# What every stage shares: config validation (at start-up, before any job),
# every wildcard constraint, the get_* helpers the rules call, and targets(),
# the one list of what the named targets build.
import copy
import hashlib
import json
import shutil
import sys
from collections import namedtuple
from pathlib import Path

# Every job imports the library next to this Snakefile, whatever copy of nrf
# a virtual environment holds (an editable install of another clone, or a
# non-editable one): src/ goes first on this process's path and, through
# PYTHONPATH, on every job's, local, conda or cluster alike.
LIBRARY = str(Path(workflow.basedir) / "src")
sys.path.insert(0, LIBRARY)

from nrf.runlog import export_allocator_settings, export_library

export_library(LIBRARY)
export_allocator_settings()

from nrf.config import (
    ConfigError,
    sessions_for,
    test_sessions,
    training_images,
    validate_config,
)
from nrf.data import nsd_layout
from nrf.data.compact_betas import compact_key
from nrf.derived import derived
from nrf.models.universal_options import universal_options

try:
    config.update(
        validate_config(
            config, Path(workflow.basedir) / "schemas" / "config.schema.yaml"
        )
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

DATASET = config["dataset"]
SUBJECTS = config["subjects"]
EXTRACTOR = config["features"]["extractor"]
SHOTS = config["shots"]
ADAPTATION = config["adaptation"]
DRAWS = list(range(ADAPTATION["draws"]))
# Encoders trained once per subject (rules/encoders.smk), and every model
# whose predictions are scored: those plus the joint Universal encoder, one
# checkpoint for every subject (rules/universal.smk).
ENCODERS = ["linear", "nrf", "fwrf", "ridge", "universal"]
MODELS = ENCODERS + ["universal_joint"]
# Decoding (rules/decoding.smk): the backend, and every source decoded per
# subject, "measured" (the Measured fMRI row) and each model's predictions.
DECODING = config["decoding"]
DECODER = config["decoder"]
MEASURED = "measured"
DECODE_SOURCES = [MEASURED] + MODELS
# The paper's reference numbers ship with the workflow; the tables read a copy
# inside the run (rule paper_tables), so no rule input is an absolute path and
# a finished run moved elsewhere plans nothing new. The hash recopies it when
# the shipped file changes.
PAPER_SOURCE = Path(workflow.basedir) / "reference" / "nrf_paper_tables.csv"
PAPER_SHA256 = hashlib.sha256(PAPER_SOURCE.read_bytes()).hexdigest()
PAPER_TABLES = "resources/reference/nrf_paper_tables.csv"


wildcard_constraints:
    dataset=DATASET,
    subject="|".join(SUBJECTS),
    model="|".join(MODELS),
    extractor="|".join(sorted({EXTRACTOR, "alexnet"})),
    # one spelling everywhere: n{n}_draw{draw}, N one of `shots`
    n="|".join(str(n) for n in SHOTS),
    draw=r"\d+",
    depth=r"\d+",
    width=r"\d+",
    source="|".join(DECODE_SOURCES),
    backend="offline|mindeye2",
    imageset="test|face|body|place|object",
    resolution=r"[0-9]+(\.[0-9]+)?",


def gpus(always=False):
    """The GPUs a torch job declares: one on real NSD (the paper's sizes),
    none on the simulated default, unless ``always`` (CLIP's image block,
    MindEye2) needs one whatever the dataset."""
    return 1 if always or DATASET == "nsd" else 0


# -- data (rules/data.smk, rules/download.smk) ----------------------------------------
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


def noiseless(subject):
    return f"resources/simulated/simulation/{subject}_noiseless.hdf5"


def simulated_outputs():
    """Every key the simulator writes for the configured subjects, but the
    expdesign file, which the rule names on its own."""
    keys = [nsd_layout.STIM_INFO, nsd_layout.STIMULI]
    for subject in SUBJECTS:
        keys += list(subject_volume_keys(subject).values())
        keys += betas_keys(subject)
    trees = [f"resources/simulated/{k}" for k in keys]
    return trees + [noiseless(s) for s in SUBJECTS]


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


def session_counts():
    """{subject: sessions read}, for the rules that index trials."""
    return {s: len(sessions_for(config, s)) for s in SUBJECTS}


def trials_per_session():
    if DATASET == "nsd":
        return config["nsd"]["trials_per_session"]
    return config["simulation"]["trials_per_session"]


def prepared(subject):
    return f"results/{DATASET}/prepared/{subject}.hdf5"


# -- features and encoders (rules/features.smk, encoders.smk, universal.smk) ---------
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


def checkpoints(models=ENCODERS, subjects=None):
    """Per-subject checkpoints of ``models`` (every configured subject by default)."""
    subjects = SUBJECTS if subjects is None else subjects
    return [f"results/{DATASET}/models/{m}/{s}.pt" for m in models for s in subjects]


def joint_checkpoint():
    """The Universal encoder trained on every subject at once."""
    return f"results/{DATASET}/models/universal_joint/all.pt"


def scores(model):
    return [f"results/{DATASET}/scores/{model}/{s}.csv" for s in SUBJECTS]


def retrieval(model):
    return [f"results/{DATASET}/retrieval/{model}/{s}.csv" for s in SUBJECTS]


def voxel_tables(subjects=None):
    subjects = SUBJECTS if subjects is None else subjects
    return [f"results/{DATASET}/voxels/{s}.csv" for s in subjects]


def get_voxel_table_inputs(wildcards):
    inputs = {"prepared": prepared(wildcards.subject)}
    if DATASET == "simulated":
        inputs["noiseless"] = noiseless(wildcards.subject)
    return inputs


def universal_target():
    """The held-out subject of the Universal transfer figure."""
    return DERIVED["universal_target"]


def get_heldout_prepared(wildcards):
    return [prepared(s) for s in SUBJECTS if s != wildcards.subject]


def get_transfer_options(wildcards):
    train = universal_options(config["universal"])[1]
    return {**train, "max_steps": config["universal"]["transfer_max_steps"]}


def transfer_scores(subject):
    """Universal transfer's scores on ``subject`` for every N (outer) and draw (inner)."""
    return [
        f"results/{DATASET}/transfer/universal/{subject}_n{n}_draw{d}.csv"
        for n in SHOTS
        for d in range(config["universal"]["transfer_draws"])
    ]


def cluster_subjects():
    """The two subjects of the cluster figure (the first two configured)."""
    return SUBJECTS[:2]


# -- adaptation (rules/adaptation.smk) -----------------------------------------------
# The paper's adaptation tables and their target subjects (Tables 2, 7, 8, 9);
# Table 3 and Figure 2b look at subj07 too.
ADAPTATION_TABLES = {
    "table2": "subj07",
    "table7": "subj01",
    "table8": "subj02",
    "table9": "subj05",
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
    """A target's cells, every N (outer) and draw (inner)."""
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


def adaptation_semantic(target):
    """The decoding scores of a target's cells (offline backend only; [] otherwise)."""
    if DECODING != "offline":
        return []
    return [f"results/{DATASET}/decoding/offline/adaptation/{target}.csv"]


def adaptation_table_inputs(name):
    """Input function of one adaptation table (Table 2, 7, 8 or 9)."""

    def inputs(wildcards):
        needs(name)
        target = ADAPTATION_TABLES[name]
        return {
            "cells": adaptation_cells(target),
            "nrf_full": f"results/{DATASET}/scores/nrf/{target}.csv",
            "linear_full": f"results/{DATASET}/scores/linear/{target}.csv",
            "semantic": adaptation_semantic(target),
            "paper": PAPER_TABLES,
        }

    return inputs


def get_adaptation_cell_files(wildcards):
    return adaptation_cells(wildcards.subject, ext="hdf5")


# -- probes and ablations (rules/probes.smk, rules/ablations.smk) --------------------
# Values derived from several keys (nrf.derived, which the settings table prints too).
DERIVED = derived(config)
PROBE_SUBJECT, PROBE_BASE, PROBE_TARGET = DERIVED["probe_subjects"]
PROBE_DRAWS = DERIVED["probe_draws"]
# The shuffle probe's own NRF sizes (probes.shuffle_nrf), None when absent: it
# then trains config["nrf"] and writes no training-set fit.
SHUFFLE_NRF = config["probes"].get("shuffle_nrf")
# The shuffle probe's schedule: its step cap and no early stop before its minimum.
SHUFFLE_MAX_STEPS = DERIVED["shuffle_max_steps"]
SHUFFLE_MIN_STEPS = DERIVED["shuffle_min_steps"]


def shuffle_model_options():
    """The shuffle probe's NRF: probes.shuffle_nrf merged over config["nrf"]."""
    return DERIVED["shuffle_nrf"]


def get_shuffle_intact_cells(wildcards):
    """The adaptation cells whose NRF scratch is the shuffle probe's intact arm:
    the same subject, N, draw, schedule and model (config["nrf"]), so the probe
    reads it instead of training it again; none with probes.shuffle_nrf (another
    model), with a schedule of its own (probes.shuffle_max_steps /
    shuffle_min_steps), or for draws beyond the adaptation's."""
    own_schedule = SHUFFLE_MAX_STEPS != ADAPTATION["scratch_steps"] or SHUFFLE_MIN_STEPS
    if SHUFFLE_NRF is not None or own_schedule or int(wildcards.n) not in SHOTS:
        return {}
    return {
        f"intact{d}": f"results/{DATASET}/adaptation/{PROBE_SUBJECT}/n{wildcards.n}_draw{d}.csv"
        for d in range(min(PROBE_DRAWS, ADAPTATION["draws"]))
    }


def shuffle_fit_output():
    """The shuffle probe's second output, its training-set fit beside the
    linear baseline's, where probes.shuffle_nrf is set ({} otherwise)."""
    if SHUFFLE_NRF is None:
        return {}
    return {"fit": "results/{dataset}/probes/shuffle/n{n}_fit.csv"}


def get_probe_target(wildcards):
    """The target's prepared file; one subject alone has no target to transfer to."""
    if PROBE_TARGET is None:
        raise WorkflowError(
            "fig4 and table4 finetune one subject's NRF on another's data: they need "
            f"two subjects in `subjects` (configured: {SUBJECTS[0]})"
        )
    return prepared(PROBE_TARGET)


# Table 4's N: the paper's 800, or the largest shot when the data are smaller.
TABLE4_N = DERIVED["table4_n"]


def get_table4_both_cells(wildcards):
    """The adaptation cells whose finetune of the probe base is Table 4's
    "finetune both" row (the same target, N, draw, schedule and seed), so the
    ablation reads it instead of training it again; none where Table 4's N is
    not one of the cells' shots."""
    if PROBE_TARGET is None or TABLE4_N not in SHOTS:
        return {}
    return {
        f"both{d}": f"results/{DATASET}/adaptation/{PROBE_TARGET}/n{TABLE4_N}_draw{d}.csv"
        for d in range(ADAPTATION["draws"])
    }


# The step cap Tables 5-6 trained under: ablations.max_steps where it is
# set, in place of the pipeline's own (nrf.experiments.ablations.capped).
ABLATION_MAX_STEPS = DERIVED["ablation_max_steps"]
# Seed replicates of Tables 5-6 (ablations.seeds), None when absent: one
# training per row with `seed`, under the file names it always had.
ABLATION_SEEDS = config["ablations"].get("seeds")


def ablation_seed_tags():
    """The file-name tag of each replicate: "" alone without ablations.seeds,
    else "_seed{s}" per seed (rule ablation_architecture's {seedtag})."""
    if ABLATION_SEEDS is None:
        return [""]
    return [f"_seed{s}" for s in ABLATION_SEEDS]


def architecture_files(axis, suffix=".csv", folder="scores"):
    """Table 5's depths (axis "depth") or Table 6's widths, the other size
    kept at the configured NRF's: their per-voxel scores, or with suffix
    "_training.json" how each training ended, or with folder "models" and
    suffix ".pt" their checkpoints; one per value, or with ablations.seeds
    one per (value, seed), seeds inner."""
    nrf = config["nrf"]
    values = config["ablations"][f"{axis}s"]
    pairs = [
        (v, nrf["width"]) if axis == "depth" else (nrf["depth"], v) for v in values
    ]
    return [
        f"results/{DATASET}/ablations/{folder}/nrf_depth{d}_width{w}{tag}{suffix}"
        for d, w in pairs
        for tag in ablation_seed_tags()
    ]


# -- decoding (rules/decoding.smk) ---------------------------------------------------
def decoding_metrics(source):
    """Per-subject metric CSVs of one source, in SUBJECTS order ([] if decoding: none)."""
    if DECODING == "none":
        return []
    return [
        f"results/{DATASET}/decoding/{DECODING}/metrics/{source}/{s}.csv"
        for s in SUBJECTS
    ]


def all_decoding_metrics():
    return [path for source in DECODE_SOURCES for path in decoding_metrics(source)]


def decoders(subjects=None):
    """The trained offline decoders ([] unless decoding: offline)."""
    if DECODING != "offline":
        return []
    subjects = SUBJECTS if subjects is None else subjects
    return [f"results/{DATASET}/decoding/offline/decoders/{s}.hdf5" for s in subjects]


def fig3_subject():
    return SUBJECTS[0]


def get_fig3_reconstructions(wildcards):
    """Reconstructions Figure 3 shows, by source."""
    needs("fig3")
    return {
        source: f"results/{DATASET}/decoding/{DECODING}/{source}/{fig3_subject()}.hdf5"
        for source in DECODE_SOURCES
    }


def get_decode_inputs(wildcards):
    """The prepared subject, and the model's predictions unless source is measured."""
    inputs = {"prepared": prepared(wildcards.subject)}
    if wildcards.source != MEASURED:
        inputs["predictions"] = (
            f"results/{DATASET}/predictions/{wildcards.source}/{wildcards.subject}.hdf5"
        )
    return inputs


def get_offline_subject_inputs(wildcards):
    """The subject's decoder and prepared file, and every model's predictions."""
    inputs = {
        "decoder": f"results/{DATASET}/decoding/offline/decoders/{wildcards.subject}.hdf5",
        "prepared": prepared(wildcards.subject),
    }
    inputs.update(
        {
            f"pred_{model}": f"results/{DATASET}/predictions/{model}/{wildcards.subject}.hdf5"
            for model in MODELS
        }
    )
    return inputs


# -- volumes (rules/volumes.smk) -----------------------------------------------------
VOLUME_SUBJECT = DERIVED["volume_subject"]
VOLUME_CONFIG = config["volumes"]
# fig_volume's grids, named as the resolution wildcard spells them (1.0 -> "1")
FIGURE_GRIDS_MM = [f"{mm:g}" for mm in VOLUME_CONFIG["figure_resolutions_mm"]]
# The simulator's parameters rebuild its ground truth (None on real NSD); the
# training stimuli's side is NSD's 425 px or the simulator's image size.
VOLUME_SIMULATION = config["simulation"] if DATASET == "simulated" else None
STIMULUS_SIZE = config["simulation"]["image_size"] if DATASET == "simulated" else 425


def volume_files(subject=VOLUME_SUBJECT):
    """fig_volume's test-image volumes (NIfTI and sidecar) on its two grids."""
    base = f"results/{DATASET}/volumes/{subject}"
    return [
        f"{base}/test_{mm}mm.nii.gz{ext}"
        for mm in FIGURE_GRIDS_MM
        for ext in ("", ".json")
    ]


def contrast_files(subject=VOLUME_SUBJECT):
    base = f"results/{DATASET}/volumes/{subject}/face_vs_place"
    return [f"{base}_t.nii.gz", f"{base}_difference.nii.gz", f"{base}.json"]


# -- targets (the Snakefile's target rules, rules/report.smk) ------------------------
def table_files(name):
    """The files one paper table is written to (CSV, Markdown, HTML)."""
    return [f"results/{DATASET}/tables/{name}.{ext}" for ext in ("csv", "md", "html")]


def continuous_space_files():
    """The continuous-space experiment's table and figure (issue 23)."""
    return [f"results/{DATASET}/tables/continuous_space.{e}" for e in ("csv", "md")] + [
        f"results/{DATASET}/figures/fig_continuous_space.{e}" for e in ("png", "pdf")
    ]


def claims_inputs(wildcards):
    """Every CSV the claims page may read that this config builds, so that it
    is written last; the page reads no others (a table the config does not
    build shows as "not run", even if another config left one in the folder)."""
    found = targets()
    built = [
        name
        for name, t in found.items()
        if name != "claims"
        and t.kind in ("table", "figure")
        and missing(name, named=False) is None
    ]
    files = [f for name in built for f in found[name].files if f.endswith(".csv")]
    if "fig4" in built:
        # the shuffle probe's training-set fits, where it writes them (the page's identity sentence)
        files += [
            f
            for fit in shuffle_fit_output().values()
            for f in expand(fit, dataset=DATASET, n=SHOTS)
        ]
    return files


def figure_files(name, csv=False):
    """The files one figure is written to (PNG, PDF, and its numbers' CSV)."""
    exts = ("png", "pdf", "csv") if csv else ("png", "pdf")
    return [f"results/{DATASET}/figures/{name}.{ext}" for ext in exts]


# The settings table (build_settings; target settings, on demand): the layers
# Snakemake merged into `config`, kept apart by its API (config_settings:
# .configfiles the --configfile paths, absolute; .config the --config pairs as
# parsed), so that nrf.reporting.settings names each setting's source.
SETTINGS_LAYERS = workflow.config_settings
EMBEDDED_CONFIG = (
    []
    if SETTINGS_LAYERS.replace_workflow_config
    else [str(Path(workflow.basedir) / "config.yaml")]
)
CONFIG_FILES = [str(p) for p in SETTINGS_LAYERS.configfiles]
COMMAND_LINE_CONFIG = copy.deepcopy(dict(SETTINGS_LAYERS.config))


def settings_files():
    return [f"results/{DATASET}/settings.{ext}" for ext in ("md", "csv")]


def configfile_names():
    """Each --configfile as the table names it: relative to the workflow if inside it."""
    base = Path(workflow.basedir)
    return [
        str(p.relative_to(base)) if p.is_relative_to(base) else str(p)
        for p in map(Path, CONFIG_FILES)
    ]


# kind, "table" or "figure"; files, what its build_<target> writes; keeps, the
# models and volumes its jobs leave behind (deliverables: a run that lost one,
# say a job killed after Snakemake removed its output, rebuilds it).
Target = namedtuple("Target", "kind files keeps")


def targets():
    """Every named target, in the paper's order then ours: {name: Target}.

    The one list the Snakefile's target rules (table1, ..., all, all_tables,
    all_figures) read; whether this config can build one is missing(name)."""
    nrf, linear = ["nrf"], ["linear"]
    everything = checkpoints() + [joint_checkpoint()]
    subj07_bases = checkpoints(nrf, adaptation_bases("subj07"))
    volume = f"results/{DATASET}/volumes/{VOLUME_SUBJECT}"
    found = {
        "table1": Target(
            "table",
            table_files("table1")
            + [f"results/{DATASET}/tables/table1_rois.{e}" for e in ("csv", "html")],
            everything + decoders(),
        ),
        "fig2a": Target(
            "figure", figure_files("fig2a", csv=True), checkpoints(nrf + linear)
        ),
        "fig2b": Target("figure", figure_files("fig2b"), subj07_bases),
        "fig3": Target(
            "figure",
            figure_files("fig3"),
            checkpoints(ENCODERS, [fig3_subject()])
            + [joint_checkpoint()]
            + decoders([fig3_subject()]),
        ),
        "fig4": Target(
            "figure", figure_files("fig4", csv=True), checkpoints(nrf, [PROBE_BASE])
        ),
        "table3": Target(
            "table", table_files("table3"), subj07_bases + decoders(["subj07"])
        ),
        "table4": Target(
            "table", table_files("table4"), checkpoints(nrf, [PROBE_BASE])
        ),
        "table5": Target(
            "table", table_files("table5"), architecture_files("depth", ".pt", "models")
        ),
        "table6": Target(
            "table", table_files("table6"), architecture_files("width", ".pt", "models")
        ),
    }
    for name, target in ADAPTATION_TABLES.items():
        found[name] = Target(
            "table",
            table_files(name),
            checkpoints(nrf) + checkpoints(linear, [target]) + decoders([target]),
        )
    found.update(
        {
            "table_universal": Target(
                "table",
                table_files("table_universal"),
                checkpoints(["universal", "nrf"]) + [joint_checkpoint()],
            ),
            "fig_universal_transfer": Target(
                "figure",
                figure_files("fig_universal_transfer", csv=True),
                [f"results/{DATASET}/models/universal_heldout/{universal_target()}.pt"]
                + checkpoints(nrf, adaptation_bases(universal_target())),
            ),
            "fig_universal_clusters": Target(
                "figure",
                figure_files("fig_universal_clusters", csv=True),
                [joint_checkpoint()],
            ),
            "table_resolution": Target(
                "table",
                [
                    f"results/{DATASET}/tables/table_resolution.{e}"
                    for e in ("csv", "md", "html")
                ],
                checkpoints(nrf + linear, [VOLUME_SUBJECT])
                + [f"{volume}/heldout_truth.hdf5"],
            ),
            "fig_volume": Target(
                "figure",
                figure_files("fig_volume"),
                checkpoints(nrf, [VOLUME_SUBJECT]) + volume_files(),
            ),
            "fig_contrast": Target(
                "figure",
                [f"{volume}/face_vs_place.{e}" for e in ("png", "pdf")],
                checkpoints(nrf, [VOLUME_SUBJECT]) + contrast_files(),
            ),
            # issue 23: built by `all` only where claims.continuous_space says so
            "continuous_space": Target(
                "table" if config["claims"]["continuous_space"] else "on demand",
                continuous_space_files(),
                [],
            ),
            # the last page: every claim decided by this run's tables
            "claims": Target("page", table_files("claims"), []),
            # every setting each experiment uses, and its source (issue 21)
            "settings": Target("on demand", settings_files(), []),
        }
    )
    order = ["table1", "table2", "table3", "fig2a", "fig2b", "fig3", "table4"]
    order += ["fig4", "table5", "table6", "table7", "table8", "table9"]
    return {name: found[name] for name in order + [n for n in found if n not in order]}


# Targets that need a given subject (with at least one other, the bases).
NEEDS_SUBJECT = {**ADAPTATION_TABLES, "table3": "subj07", "fig2b": "subj07"}
# Targets that finetune or transfer one subject's model onto another's data.
NEEDS_TWO = {"fig2a", "table4", "fig4", "fig_universal_transfer"}
# Targets that score against, or are run only on, the simulator's ground
# truth (fig_volume and fig_contrast also build on real NSD when named).
SIMULATED_ONLY = {"table_resolution", "fig_volume", "fig_contrast", "continuous_space"}


def missing(name, named=True):
    """Why this config cannot build target ``name`` (None if it can). With
    ``named`` False (all, all_tables, all_figures), targets the simulator
    alone runs are left out of a real-data run as well."""
    configured = ", ".join(SUBJECTS)
    subject = NEEDS_SUBJECT.get(name)
    if subject is not None and (subject not in SUBJECTS or len(SUBJECTS) < 2):
        return (
            f"{name} needs {subject} and at least one other subject in `subjects` "
            f"(configured: {configured})"
        )
    if name in NEEDS_TWO and len(SUBJECTS) < 2:
        return f"{name} needs two subjects in `subjects` (configured: {configured})"
    if name == "fig3" and DECODING == "none":
        return (
            "fig3 needs `decoding: offline` or `decoding: mindeye2` (configured: none)"
        )
    if DATASET != "simulated" and (
        name == "table_resolution" or (name in SIMULATED_ONLY and not named)
    ):
        return f"{name} needs `dataset: simulated`, the simulator's ground truth"
    return None


def needs(name):
    """Stop before any job, saying why, if this config cannot build ``name``."""
    reason = missing(name)
    if reason is not None:
        raise WorkflowError(reason)


def checked(name, files):
    """Input function of a build rule: ``files``, once needs(name) has passed
    (so asking for the output file itself stops with the reason too)."""

    def inputs(wildcards):
        needs(name)
        return files

    return inputs


def target_input(*names):
    """Input function of a named target's rule: its files and the models and
    volumes its jobs leave behind; stops, saying why, where the config cannot
    build one of ``names``."""

    def files(wildcards):
        found = targets()
        for name in names:
            needs(name)
        return list(
            dict.fromkeys(f for n in names for f in found[n].files + found[n].keeps)
        )

    return files


def every_target(*kinds):
    """The files and deliverables of every target of these kinds that this
    config builds (all: tables and figures; all_tables; all_figures)."""
    found = targets()
    return list(
        dict.fromkeys(
            f
            for name, t in found.items()
            if t.kind in kinds and missing(name, named=False) is None
            for f in t.files + t.keeps
        )
    )


# -- Figure 4's whole-brain regions (rules/data.smk, download.smk, probes.smk) ------
def get_probe_rois_prepare_inputs(wildcards):
    """The prepared subject's inputs; on NSD the betas are the compact files of
    the probe's ROI voxels outside nsdgeneral (rule download_probe_roi_betas)."""
    inputs = get_prepare_inputs(wildcards)
    if betas_format() == "compact":
        inputs["betas"] = [
            tree(compact_key(nsd_layout.betas(wildcards.subject, s), "probe_rois"))
            for s in sessions_for(config, wildcards.subject)
        ]
    return inputs


def probe_roi_volumes(wildcards):
    """The masks and the atlases of probes.rois: what selects the probe's ROI
    voxels outside nsdgeneral (nrf.data.roi_voxels)."""
    atlases = sorted({roi["atlas"] for roi in config["probes"]["rois"].values()})
    keys = {
        "brainmask": nsd_layout.brainmask(wildcards.subject),
        "nsdgeneral": nsd_layout.roi(wildcards.subject, "nsdgeneral"),
    }
    keys.update({atlas: nsd_layout.roi(wildcards.subject, atlas) for atlas in atlases})
    return {name: f"resources/nsd/{key}" for name, key in keys.items()}


def get_probe_target_rois(wildcards):
    """The target's ROI voxels outside nsdgeneral (rule prepare_probe_rois)."""
    return get_probe_target(wildcards)[: -len(".hdf5")] + ".probe_rois.hdf5"
