"""The settings every experiment of a run uses, where each comes from, and
how each compares with the paper's text and the authors' released code
(issue 21; target ``settings``, rule ``build_settings``).

One row per (experiment, setting): the value the run's jobs receive, its
source, the paper's value, the authors' code's value, whether the run differs
from either, and a note saying why where the difference is documented.

Sources, highest first, as Snakemake and :func:`nrf.config.validate_config`
layer them:

    command line (--config)      ``snakemake ... --config key=value``
    config file <path>           ``--configfile``, later files over earlier ones
    config.yaml                  the workflow's embedded config, top level
    preset (presets.<dataset>)   the dataset's preset (model sections only)
    schema default               schemas/config.schema.yaml

A model section (nrf, train, ...) is resolved as schema default <- preset <-
the top-level section, whatever layer set the top-level section; any other
key is the last layer that sets it. Snakemake merges its layers into one
``config`` before the Snakefile sees it, so the workflow hands this module the
layers themselves: the embedded config.yaml, each ``--configfile`` (Snakemake's
``workflow.config_settings.configfiles``, absolute paths) and the
``--config`` pairs (``workflow.config_settings.config``, parsed as Snakemake
parses them). :func:`build_settings` merges and validates them again and stops
if the result is not the config Snakemake holds, so no row names a wrong source.

Reference values (:data:`REFERENCES`) were copied from the paper's text (NRF
paper, section 3.1 and appendix A; the Universal Brain Encoder's paper,
section 3) and from the authors' released code as docs/FIDELITY.md reads it
(haomiao8/NRF; WeizmannVision/universal-brain-encoder-code). Nothing here
reads either paper at run time. Values a run derives from several keys (an
adaptation finetune's epoch, Table 4's N) follow the rules that use them; the
workflow passes its own derivations and :func:`build_settings` checks them.

No torch: the table is built offline, before anything is downloaded or trained.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from nrf.atomic import atomic_output
from nrf.config import MODEL_SECTIONS, sessions_for, training_images, validate_config
from nrf.data.nsd_layout import NSD_SESSIONS
from nrf.derived import derived

COLUMNS = ["experiment", "setting", "value", "source", "paper", "authors_code", "differs", "note"]
SCHEMA_DEFAULT = "schema default"
EMBEDDED = "config.yaml"
COMMAND_LINE = "command line (--config)"
#: the note of a value the simulated default chose for its time budget
SIMULATED_NOTE = "simulated default (sized for 20 minutes on 2 CPUs)"
#: the note of a differing value no reference documents
UNDOCUMENTED = "not documented"
#: a step cap of at least this many epochs never binds in practice: early
#: stopping (patience 5 evaluations, one an epoch) ends the training first
NO_CAP_EPOCHS = 100
#: the paper's four subjects, each with all 40 NSD sessions
PAPER_SUBJECTS = ["subj01", "subj02", "subj05", "subj07"]
#: one epoch of the authors' full-data training on NSD: ceil(9,000 / 32)
NSD_EPOCH_STEPS = math.ceil(9000 / 32)
#: fWRF's layer maps per extractor (nrf.features.alexnet, nrf.features.filterbank; no torch here)
FWRF_LAYERS = {
    "alexnet": "conv1-conv5 after ReLU (conv1 after its max-pool), each on its own grid "
               "(27², 27², 13², 13², 13²), cached float16",
    "filterbank": "five filter-bank grids (16², 8², 4², 8², 4²)",
}
#: the simulated preset's fWRF penalties (config.yaml), a documented difference from the paper's
SIMULATED_FWRF_LAMBDAS = [1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]


# -- values ------------------------------------------------------------------------------


def format_value(value, nested: bool = False) -> str:
    """A value as the table shows it: numbers in short form, lists in brackets,
    a mapping as ``key: value, ...`` (braced inside another)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, True) for v in value) + "]"
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {format_value(v, True)}" for k, v in value.items())
        return "{" + text + "}" if nested else text
    return str(value)


def _equal(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


# -- reference values -------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """One reference value: its text and how a run's value is compared with it.

    check: the value to equal, a function (value, config) -> bool, or None
    (stated for information, never compared)."""

    text: str
    check: object = None

    def matches(self, value, config) -> bool | None:
        if self.check is None:
            return None
        if callable(self.check):
            return bool(self.check(value, config))
        return _equal(value, self.check)


def ref(value, text: str | None = None) -> Ref:
    """A reference value compared by equality (floats to 1e-9)."""
    return Ref(text if text is not None else format_value(value), value)


def says(text: str) -> Ref:
    """A reference stated for information only."""
    return Ref(text, None)


@dataclass(frozen=True)
class Reference:
    """The paper's and the authors' value of one setting.

    why  : the documented reason of a difference, shown where the run's value
           is the authors' code's (differing from the paper's text) or ``kept``
    kept : the project's documented value where it keeps a difference"""

    paper: Ref | None = None
    authors: Ref | None = None
    why: str = ""
    kept: object = field(default=None)


def _no_cap(epoch_steps) -> Ref:
    """'none, early stopping': any cap of NO_CAP_EPOCHS epochs or more."""
    def check(value, config):
        return value is None or value >= NO_CAP_EPOCHS * epoch_steps(config)
    return Ref(f"none: early stopping (a cap of >= {NO_CAP_EPOCHS} epochs counts as none)", check)


def _full_epoch(config) -> int:
    return max(1, math.ceil(training_images(config) / config["train"]["batch_images"]))


def _largest_n_epoch(config) -> int:
    return max(1, math.ceil(max(config["shots"]) / config["train"]["batch_images"]))


def _per_epoch() -> Ref:
    """Checks a {N: steps} value against one epoch, ceil(N / 32) (the authors' batch)."""
    def check(value, config):
        return all(v == max(1, math.ceil(n / 32)) for n, v in value.items())
    return Ref("every epoch: ceil(N / 32) steps", check)


STOPS_EARLY = Reference(authors=_no_cap(_full_epoch), paper=says("early stopping (steps not stated)"))
NRF_REFERENCES = {
    "nrf.merger_token_dim": Reference(ref(256), ref(128), why="the authors' code (the paper's text says 256)"),
    "nrf.merger_dim": Reference(ref(256), ref(512), why="the authors' code (the paper's text says 256)"),
    "nrf.fourier_features": Reference(says("m not stated"), ref(32)),
    "nrf.fourier_scale": Reference(says("not stated"), ref(32.0)),
    "nrf.fourier_seed": Reference(None, ref(42)),
    "nrf.depth": Reference(ref(8), ref(8)),
    "nrf.width": Reference(ref(4096), ref(4096)),
}
TRAIN_REFERENCES = {
    "train.batch_images": Reference(ref(32), ref(32)),
    "train.batch_voxels": Reference(ref(2000), ref(2000)),
    "train.lr": Reference(ref(3e-3, "0.003 (Adam)"), ref(3e-4, "0.0003 (AdamW)"),
                          why="the authors' code's AdamW rate (the paper's text says Adam at 3e-3)"),
    "train.weight_decay": Reference(says("not stated (Adam)"), ref(0.015)),
    "train.alpha": Reference(ref(0.1), ref(0.1)),
    "train.max_steps": STOPS_EARLY,
    "train.min_steps": Reference(None, ref(0)),
    "train.eval_every": Reference(None, ref(NSD_EPOCH_STEPS, f"every epoch ({NSD_EPOCH_STEPS} steps on NSD)")),
    "train.patience": Reference(None, ref(5)),
    "train.voxel_sampling": Reference(ref("per_image", "per_image (2000 voxels for each image)"), ref("per_image")),
    "train.precision": Reference(None, ref("fp32"), kept="bf16",
                                 why="bf16 autocast on a GPU, Fourier features in float32 (docs/FIDELITY.md); "
                                     "precision: fp32 trains as the authors did"),
    "validation images": Reference(None, ref("test images", "the 907 test images")),
}
REFERENCES: dict[str, Reference] = {
    "dataset": Reference(ref("nsd"), ref("nsd")),
    "protocol": Reference(None, ref("paper", "paper (z-score over all trials, early stopping on the test images)")),
    "subjects": Reference(ref(PAPER_SUBJECTS), ref(PAPER_SUBJECTS)),
    "sessions": Reference(ref({s: NSD_SESSIONS[s] for s in PAPER_SUBJECTS}, "all (40 each)"), None),
    "test_images": Reference(says("around 1,000 shared images"), ref("seen_by_all", "seen_by_all (907 images)")),
    "shots": Reference(ref([20, 200, 800]), None),
    "features.extractor": Reference(ref("clip_vitb16"), ref("clip_vitb16")),
    "features.clip_weights": Reference(ref("openai"), ref("openai")),
    "features.clip_layers": Reference(ref([3, 6]), ref([4, 7], "[4, 7] (hidden_states[3+1], [6+1])"),
                                      why="the authors' code (the paper's text says layers 3 and 6)"),
    "features.clip_precision": Reference(None, ref("fp32")),
    "token cache dtype": Reference(None, ref("float32", "float32, recomputed each batch"), kept="float16",
                                   why="CLIP is frozen: tokens computed once, cached as float16 "
                                       "(relative rounding 2^-11; docs/FIDELITY.md)"),
    **NRF_REFERENCES,
    **TRAIN_REFERENCES,
    "linear.epochs": Reference(ref(150), None),
    "linear.lr": Reference(ref(3e-4, "0.0003, decaying linearly (AdamW)"), None),
    "feature network": Reference(ref("alexnet"), None),
    "fwrf.n_top": Reference(ref(256), None),
    "fwrf.n_centres": Reference(ref(3), None),
    "fwrf.aperture": Reference(ref(0.8), None),
    "fwrf.sizes": Reference(ref([0.15, 0.25]), None),
    "fwrf.n_sizes": Reference(ref(2), None),
    "fwrf.lambdas": Reference(ref([1e4, 1e5]), None, kept=SIMULATED_FWRF_LAMBDAS,
                              why="simulated default: decades from no shrinkage to the mean for the filter bank's "
                                  "pooled maps, so under 10% of voxels sit at either end (docs/FIDELITY.md)"),
    "fwrf layers": Reference(says("fWRF (St-Yves & Naselaris 2018) on AlexNet"), None),
    "universal.backbone": Reference(says("DINOv2 ViT-G/14 + LoRA"), ref("dinov2_vitl14_reg", "DINOv2 ViT-L/14 + LoRA"),
                                    kept="clip_vitb16",
                                    why="stand-in: the cached CLIP ViT-B/16 taps of the NRF (docs/FIDELITY.md)"),
    "universal.variant": Reference(None, ref("authors")),
    "universal.channels": Reference(says("C not stated"), ref(128, "128 (inner_ch)")),
    "universal.embedding_dim": Reference(ref(256), ref(256)),
    "universal.dropout": Reference(None, ref(0.25)),
    "universal.batch_images": Reference(ref(32), ref(32)),
    "universal.batch_voxels": Reference(ref(5000), ref(5000)),
    "universal.lr": Reference(ref(1e-3, "0.001 (Adam)"), ref(1e-3, "0.001 (Adam, amsgrad)")),
    "universal.alpha": Reference(None, ref(0.1)),
    "universal.max_steps": Reference(None, ref(30 * NSD_EPOCH_STEPS, f"30 epochs ({30 * NSD_EPOCH_STEPS} steps)")),
    "universal.min_steps": Reference(None, ref(0)),
    "universal.eval_every": Reference(None, ref(NSD_EPOCH_STEPS, f"every epoch ({NSD_EPOCH_STEPS} steps)")),
    "universal.patience": Reference(None, ref(4, "4 (ReduceLROnPlateau)")),
    "universal.transfer_epochs": Reference(None, ref(50)),
    "transfer kept state": Reference(None, ref("best validation state")),
    "adaptation.finetune_steps": Reference(says("early stopping"), _no_cap(_largest_n_epoch)),
    "adaptation.scratch_steps": Reference(says("trained like the full model"), _no_cap(_largest_n_epoch)),
    "eval_every per N": Reference(None, _per_epoch()),
    "bases per target": Reference(ref(3), ref(3)),
    "trainable": Reference(says("both components, end to end"), ref("all")),
    "ensemble intercept": Reference(ref(True, "yes (b_v, eq. 1)"),
                                    says("--fit-intercept off by default in voxel_regression.py, on in their example")),
    "base subject": Reference(ref("subj01"), None),
    "target subject": Reference(ref("subj07", "subj07 (Table 4's caption; its text says subject 8)"), None),
    "finetune images N": Reference(ref(800), None),
    "strategies": Reference(ref(["all", "image_block", "predictor"], "both, image extractor only, projector only"),
                            None),
    "ablations.depths": Reference(ref([4, 8, 16]), None),
    "ablations.widths": Reference(ref([2048, 4096, 8192]), None),
    "width (Table 5)": Reference(ref(4096), None),
    "depth (Table 6)": Reference(ref(8), None),
    "step cap": STOPS_EARLY,
    "ablations.max_steps": Reference(None, _no_cap(_full_epoch)),
    "ablations.min_steps": Reference(None, Ref("none: train.min_steps (0)", lambda value, config: value is None),
                                     why="configs/claims.yaml: a depth-16 MLP at lr 3e-3 can sit flat for its "
                                         "first few hundred steps, and patience would end it there"),
    "probes.shuffle_max_steps": Reference(None, Ref("none: adaptation.scratch_steps",
                                                    lambda value, config: value is None)),
    "probes.shuffle_min_steps": Reference(None, Ref("none: the paper's schedule", lambda value, config: value is None),
                                          why="configs/claims.yaml: a coordinate code of ~10 mm wavelengths starts "
                                              "slowly, and patience of 5 two-step epochs at N = 20 ends it within "
                                              "tens of steps"),
    "shuffle step cap": Reference(says("trained like the full model"), _no_cap(_largest_n_epoch)),
    "subject": Reference(ref("subj01"), None),
    "probe base": Reference(ref("subj01"), None),
    "probe target": Reference(ref("subj07"), None),
    "probe ROIs": Reference(ref(["EBA", "V1"]), None),
    "probe ROI voxels": Reference(says("not stated"), ref(
        "label ∩ brainmask", "label ∩ brainmask (nsd_data_processing/common.py build_roi_masks: no nsdgeneral)")),
    "decoding": Reference(ref("mindeye2"), None, kept="offline",
                          why="the offline ridge decoder by default: MindEye2 needs its checkpoints and a GPU "
                              "(decoding: mindeye2)"),
}


# -- where each value comes from ------------------------------------------------------------


class Sources:
    """The layer that set each key: the embedded config.yaml, each
    ``--configfile`` (in order) and the ``--config`` pairs."""

    def __init__(self, dataset: str, embedded: dict | None, configfiles: list[tuple[str, dict]],
                 command_line: dict):
        self.dataset = dataset
        self.layers = ([(EMBEDDED, embedded)] if embedded is not None else [])
        self.layers += [(f"config file {name}", layer or {}) for name, layer in configfiles]
        self.layers += [(COMMAND_LINE, command_line or {})]

    def of(self, key: str) -> str:
        path = key.split(".")
        for label, layer in reversed(self.layers):
            if _has(layer, path):
                return label
        if path[0] in MODEL_SECTIONS and len(path) > 1:
            preset = ["presets", self.dataset, *path]
            for label, layer in reversed(self.layers):
                if _has(layer, preset):
                    where = f"presets.{self.dataset}"
                    return f"preset ({where})" if label == EMBEDDED else f"{label} ({where})"
        return SCHEMA_DEFAULT

    def user_set(self, source: str) -> bool:
        """Whether a source is the user's: a config file or the command line."""
        return source.startswith(("config file", COMMAND_LINE))


def _has(layer, path) -> bool:
    node = layer
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def merge_layers(*layers: dict) -> dict:
    """Snakemake's merge (snakemake.utils.update_config): nested dicts key by key."""
    merged: dict = {}
    for layer in layers:
        _update(merged, copy.deepcopy(layer or {}))
    return merged


def _update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _update(base[key], value)
        else:
            base[key] = value


# -- schedules the table restates (nrf.experiments computes them; see test_settings) --------


def _epochs(config: dict, ns) -> dict:
    """{N: steps of one epoch}: nrf.experiments.cell.schedule's eval_every under protocol paper."""
    return {n: max(1, math.ceil(n / config["train"]["batch_images"])) for n in ns}


# -- the rows --------------------------------------------------------------------------------


class _Table:
    def __init__(self, config: dict, sources: Sources):
        self.config, self.sources, self.rows = config, sources, []
        self.simulated = config["dataset"] == "simulated"

    def key(self, experiment: str, key: str, ref_name: str | None = None):
        """A row of one config key, its value as the merged config holds it."""
        node = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        self.add(experiment, key, node, keys=[key], ref_name=ref_name)

    def section(self, experiment: str, section: str, skip=(), only=None):
        for name in self.config[section]:
            if name in skip or (only is not None and name not in only):
                continue
            self.key(experiment, f"{section}.{name}")

    def add(self, experiment: str, setting: str, value, *, keys=(), code: str | None = None,
            ref_name: str | None = None):
        """A row; its source is the layers of ``keys`` (or the code that fixes it)."""
        if code is not None:
            sources = [f"code ({code})"]
        else:
            sources = list(dict.fromkeys(self.sources.of(k) for k in keys)) or [SCHEMA_DEFAULT]
        reference = REFERENCES.get(ref_name or setting, Reference())
        paper = reference.paper.matches(value, self.config) if reference.paper else None
        authors = reference.authors.matches(value, self.config) if reference.authors else None
        compared = [m for m in (paper, authors) if m is not None]
        differs = "" if not compared else ("no" if all(compared) else "yes")
        note = ""
        if differs == "yes":
            kept = reference.kept is not None and _equal(value, reference.kept)
            if reference.why and (kept or authors is True):
                note = reference.why
            elif self.simulated and not any(self.sources.user_set(s) for s in sources):
                note = SIMULATED_NOTE
            else:  # on NSD, or a user's own value on the simulator
                note = UNDOCUMENTED
        self.rows.append({
            "experiment": experiment, "setting": setting, "value": format_value(value),
            "source": " + ".join(sources),
            "paper": reference.paper.text if reference.paper else "",
            "authors_code": reference.authors.text if reference.authors else "",
            "differs": differs, "note": note,
        })


TRAIN_KEYS = ("batch_images", "batch_voxels", "lr", "weight_decay", "alpha", "voxel_sampling", "precision")


def settings_rows(config: dict, sources: Sources) -> pd.DataFrame:
    """Every experiment's settings (:data:`COLUMNS`), in pipeline order."""
    t = _Table(config, sources)
    d = derived(config)
    paper = config["protocol"] == "paper"
    shots = config["shots"]
    validation = "test images" if paper else f"validation split ({config['val_fraction']:g} of the training images)"
    clip = config["features"]["extractor"].startswith("clip")

    e = "data and protocol"
    for key in ("dataset", "protocol", "seed", "subjects"):
        t.key(e, key)
    t.add(e, "sessions", {s: len(sessions_for(config, s)) for s in config["subjects"]},
          keys=["sessions", "dataset"])
    for key in ("test_images", "shots", "device", "predict_chunk_voxels"):
        t.key(e, key)
    if not paper:
        t.key(e, "val_fraction")

    e = "image features"
    t.key(e, "features.extractor")
    if clip:
        t.section(e, "features", only=("clip_weights", "clip_layers", "clip_precision"))
    t.key(e, "features.batch_size")
    t.add(e, "token cache dtype", "float16", code="nrf.features.cache")

    e = "NRF, full training"
    t.section(e, "nrf")
    t.section(e, "train")
    t.add(e, "validation images", validation, keys=["protocol"])

    e = "linear, full training"
    t.section(e, "linear")
    t.add(e, "validation images", validation, keys=["protocol"], ref_name="-")

    e = "fWRF"
    fwrf_features = "alexnet" if config["features"]["extractor"] == "clip_vitb16" else config["features"]["extractor"]
    t.add(e, "feature network", fwrf_features, keys=["features.extractor"])
    if fwrf_features == "alexnet":
        t.key(e, "features.alexnet_weights")
    t.add(e, "fwrf layers", FWRF_LAYERS.get(fwrf_features, "the extractor's layer maps"),
          keys=["features.extractor"])
    t.section(e, "fwrf")

    e = "ridge"
    t.section(e, "ridge")

    def universal(e):
        backbone = config["universal"].get("backbone", config["features"]["extractor"])
        keys = ["universal.backbone"] if "backbone" in config["universal"] else ["features.extractor"]
        t.add(e, "universal.backbone", backbone, keys=keys)
        section = config["universal"]
        skip = {k for k in section if k.startswith("transfer_") or k in ("clusters", "backbone")}
        if section["variant"] != "authors":
            skip.add("dropout")  # the compact variant has none
        t.section(e, "universal", skip=skip)

    universal("Universal, single subject")
    e = "Universal, joint"
    universal(e)
    t.add(e, "subjects trained jointly (steps per subject)", config["subjects"], keys=["subjects"])
    t.key(e, "universal.clusters")

    e = "Universal, transfer"
    section = config["universal"]
    t.add(e, "held-out subject", d["universal_target"], keys=["universal.transfer_target", "subjects"])
    t.key(e, "shots")
    t.key(e, "universal.transfer_draws")
    t.key(e, "universal.lr")
    if section["variant"] == "authors":
        t.key(e, "universal.transfer_epochs")
        steps = _epochs({**config, "train": {"batch_images": section["batch_images"]}}, shots)
        t.add(e, "eval_every per N", steps, keys=["universal.batch_images", "shots"])
        t.add(e, "transfer kept state", "best validation state", keys=["universal.variant"])
    else:
        t.key(e, "universal.transfer_max_steps")
        t.add(e, "transfer kept state", "final state", keys=["universal.variant"])

    def small(e, steps_key, probe=False):
        """A training on N images (nrf.experiments.cell.schedule); a probe's
        draws are probes.draws where set, else the adaptation cells'."""
        t.key(e, "shots")
        if probe:
            t.add(e, "draws", d["probe_draws"], keys=["probes.draws" if "draws" in config["probes"]
                                                      else "adaptation.draws"])
        else:
            t.key(e, "adaptation.draws")
        t.key(e, steps_key)
        if paper:
            t.add(e, "eval_every per N", _epochs(config, shots), keys=["train.batch_images", "shots"])
            t.key(e, "train.patience")
        t.add(e, "validation images", validation, keys=["protocol"])
        t.section(e, "train", only=TRAIN_KEYS)

    e = "adaptation finetune (Tables 2, 3, 7-9)"
    small(e, "adaptation.finetune_steps")
    t.add(e, "bases per target", len(config["subjects"]) - 1, keys=["subjects"])
    t.add(e, "trainable", "all", code="nrf.experiments.cell.finetune")
    t.add(e, "ensemble intercept", True, code="nrf.ensemble.fit_ensemble")
    t.key(e, "adaptation.figure_shots")

    e = "adaptation scratch"
    small(e, "adaptation.scratch_steps")
    t.section(e, "nrf")

    e = "adaptation linear"
    t.key(e, "shots")
    t.section(e, "linear")

    subject, base, target = d["probe_subjects"]
    e = "Table 4 (finetune strategies)"
    t.add(e, "base subject", base, keys=["probes.base", "subjects"])
    t.add(e, "target subject", target, keys=["probes.target", "subjects"])
    t.add(e, "finetune images N", d["table4_n"], keys=["ablations.finetune_n", "shots"])
    t.key(e, "adaptation.draws")
    t.add(e, "strategies", ["all", "image_block", "predictor"], code="nrf.experiments.ablations.STRATEGIES")
    t.key(e, "adaptation.finetune_steps")
    if paper:
        t.add(e, "eval_every per N", _epochs(config, [d["table4_n"]]),
              keys=["train.batch_images", "ablations.finetune_n"])
        t.key(e, "train.patience")
    t.add(e, "validation images", validation, keys=["protocol"])
    t.section(e, "train", only=TRAIN_KEYS)

    e = "Tables 5-6 (depth, width)"
    t.add(e, "subject", subject, keys=["probes.subject", "subjects"])
    t.key(e, "ablations.depths")
    t.add(e, "width (Table 5)", config["nrf"]["width"], keys=["nrf.width"])
    t.key(e, "ablations.widths")
    t.add(e, "depth (Table 6)", config["nrf"]["depth"], keys=["nrf.depth"])
    t.key(e, "ablations.seeds")
    t.key(e, "ablations.max_steps")
    t.key(e, "ablations.min_steps")
    t.add(e, "step cap", d["ablation_max_steps"], keys=["ablations.max_steps", "train.max_steps"])
    t.section(e, "train", skip=("max_steps",))
    t.section(e, "nrf", skip=("depth", "width"))
    t.add(e, "validation images", validation, keys=["protocol"])

    e = "Figure 4a (shuffle)"
    t.add(e, "subject", subject, keys=["probes.subject", "subjects"], ref_name="-")
    t.key(e, "probes.shuffle_atlases")
    small(e, "adaptation.scratch_steps", probe=True)
    t.key(e, "probes.shuffle_max_steps")
    t.key(e, "probes.shuffle_min_steps")
    t.add(e, "shuffle step cap", d["shuffle_max_steps"], keys=["probes.shuffle_max_steps", "adaptation.scratch_steps"])
    # its own NRF sizes where probes.shuffle_nrf sets them (merged over nrf)
    own = config["probes"].get("shuffle_nrf") or {}
    for name, value in {**config["nrf"], **own}.items():
        t.add(e, f"nrf.{name}", value, keys=[f"probes.shuffle_nrf.{name}" if name in own else f"nrf.{name}"])

    e = "Figure 4b/c (ROI transfer)"
    t.add(e, "probe base", base, keys=["probes.base", "subjects"])
    t.add(e, "probe target", target, keys=["probes.target", "subjects"])
    t.add(e, "probe ROIs", sorted(config["probes"]["rois"]), keys=["probes.rois"])
    # each region on the whole brain mask, nsdgeneral or not, as the authors build it
    t.add(e, "probe ROI voxels", "label ∩ brainmask", code="nrf.data.roi_voxels")
    t.key(e, "probes.rois")
    for key in ("shift_mm", "shift_direction", "seed_offset"):
        t.key(e, f"probes.{key}")
    small(e, "adaptation.finetune_steps", probe=True)

    e = "decoding"
    t.key(e, "decoding")
    backend = config["decoding"]
    if backend == "offline":
        t.section(e, "decoder", only=("image_size", "alphas", "cv"))
    if backend != "none":
        t.key(e, "decoder.download_weights")
        t.key(e, "decoder.figure_images")
    if backend == "mindeye2":
        t.key(e, "decoder.mindeye2.checkpoint_dir")
        t.key(e, "decoder.mindeye2.scaling")

    e = "volumes"
    t.add(e, "subject", d["volume_subject"], keys=["subjects"], ref_name="-")
    t.section(e, "volumes")
    t.key(e, "predict_chunk_voxels")
    return pd.DataFrame(t.rows, columns=COLUMNS)


# -- files -------------------------------------------------------------------------------


def to_markdown(rows: pd.DataFrame, *, dataset: str, protocol: str) -> str:
    """The settings page: one table per experiment, differing rows marked."""
    differ = rows[rows["differs"] == "yes"]
    undocumented = differ[differ["note"] == UNDOCUMENTED]
    lines = [
        f"# Settings: dataset {dataset}, protocol {protocol}",
        "",
        ("Every setting each experiment of this run uses, where it comes from (command line, a config "
         "file, the workflow's config.yaml, the dataset's preset, or the schema's default), beside the "
         "paper's text and the authors' released code. **yes** marks a value that differs from either; "
         "the note says why where the difference is documented (docs/FIDELITY.md)."),
        "",
        f"{len(rows)} settings; {len(differ)} differ from the paper or the authors' code; "
        f"{len(undocumented)} of them without a documented reason"
        + (": " + "; ".join(f"{r.experiment}: {r.setting} = {r.value}" for r in undocumented.itertuples())
           if len(undocumented) else "."),
    ]
    for experiment, group in rows.groupby("experiment", sort=False):
        shown = group.drop(columns="experiment").copy()
        marked = shown["differs"] == "yes"
        shown.loc[marked, "differs"] = "**yes**"
        shown.loc[marked, "value"] = "**" + shown.loc[marked, "value"] + "**"
        shown.loc[shown["note"] == UNDOCUMENTED, "note"] = f"**{UNDOCUMENTED}**"
        shown = shown.rename(columns={"authors_code": "authors' code"})
        lines += ["", f"## {experiment}", "", _markdown_table(shown)]
    return "\n".join(lines) + "\n"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def write_settings(rows: pd.DataFrame, out_csv, out_md, *, dataset: str, protocol: str) -> None:
    """The table as CSV (a deliverable: no checksum line) and Markdown, each written atomically."""
    with atomic_output(out_csv) as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(rows, dataset=dataset, protocol=protocol))


def read_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def settings_table(embedded: dict | None, configfiles: list[tuple[str, dict]], command_line: dict,
                   schema_path) -> tuple[dict, pd.DataFrame]:
    """(the validated config, its settings rows) from the layers Snakemake merges."""
    raw = merge_layers(embedded or {}, *(layer for _, layer in configfiles), command_line or {})
    config = validate_config(raw, schema_path)
    sources = Sources(config["dataset"], embedded, configfiles, command_line)
    return config, settings_rows(config, sources)


def build_settings(*, embedded_path, configfile_paths, configfile_names, command_line: dict, schema_path,
                   held_config: dict, out_csv, out_md, log=None) -> pd.DataFrame:
    """Write the settings table of the config Snakemake holds (``held_config``).

    Stops if the layers read here do not merge into ``held_config``: a row would
    then misstate a source or a value. The values derived from several keys
    come from nrf.derived, as the workflow's do.
    """
    embedded = read_yaml(embedded_path) if embedded_path else None
    configfiles = [(name, read_yaml(path)) for name, path in zip(configfile_names, configfile_paths)]
    config, rows = settings_table(embedded, configfiles, command_line, schema_path)
    differing = sorted(k for k in set(config) | set(held_config) if not _equal(config.get(k), held_config.get(k)))
    if differing:
        raise ValueError(f"the config layers read here do not give the config Snakemake holds (keys {differing}): "
                         "the sources of the settings table cannot be told")
    write_settings(rows, out_csv, out_md, dataset=config["dataset"], protocol=config["protocol"])
    if log is not None:
        log.info("%d settings, %d differ (%d not documented)", len(rows), (rows["differs"] == "yes").sum(),
                 (rows["note"] == UNDOCUMENTED).sum())
    return rows
