"""Config validation: the schema, its defaults, the per-dataset presets.

Called once by the Snakefile at start-up, so a bad config stops the run
before any job starts, with a message naming the key and what it allows.
"""

from __future__ import annotations

import copy
import math
from urllib.parse import urlparse

import jsonschema
import yaml

from nrf.data.nsd_layout import NSD_SESSIONS, NSD_TEST_IMAGES_SEEN_BY_ALL

# Sections a dataset's preset fills and a top-level key overrides.
MODEL_SECTIONS = (
    "adaptation", "mem_mb", "features", "nrf", "train", "linear", "fwrf", "ridge", "universal", "ablations",
)
# Training images per subject in real NSD: 10,000 minus the 1,000 shared.
NSD_TRAIN_IMAGES = 9000
# Shared images: a subject who completed all 40 sessions saw every one.
NSD_SHARED_IMAGES = 1000


class ConfigError(ValueError):
    """A config value the pipeline cannot run with."""


def load_schema(path) -> dict:
    """The config schema; its path comes from the workflow (schemas/ beside the Snakefile)."""
    with open(path) as f:
        return yaml.safe_load(f)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"config key '{key}': {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key '{key}': {error.message}; allowed keys: {allowed}"
    if error.validator == "propertyNames":
        allowed = ", ".join(error.schema["propertyNames"].get("enum", []))
        return f"config key '{key}': {error.message}; allowed names: {allowed}"
    return f"config key '{key}': {error.message}"


def _fill_defaults(instance: dict, schema: dict, root: dict) -> None:
    """Set every missing property that has a schema default, recursively."""
    if "$ref" in schema:
        schema = _resolve_ref(schema["$ref"], root)
    for name, sub in schema.get("properties", {}).items():
        resolved = _resolve_ref(sub["$ref"], root) if "$ref" in sub else sub
        default = sub.get("default", resolved.get("default"))
        if name not in instance and default is not None:
            instance[name] = copy.deepcopy(default)
        if isinstance(instance.get(name), dict):
            _fill_defaults(instance[name], resolved, root)


def _resolve_ref(ref: str, root: dict) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def section_defaults(schema: dict, section: str) -> dict:
    """The schema's defaults of one model section (the paper's values)."""
    props = schema["definitions"][section]["properties"]
    return {k: copy.deepcopy(v["default"]) for k, v in props.items() if "default" in v}


def _coerce(value, schema: dict, root: dict):
    """Numbers that arrive as strings (Snakemake's ``--config 'train={lr: 0.001}'``
    hands nested values over as text) become numbers where the schema wants one."""
    if "$ref" in schema:
        schema = _resolve_ref(schema["$ref"], root)
    kind = schema.get("type")
    if isinstance(value, str) and kind in ("number", "integer"):
        try:
            number = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return float(number) if kind == "number" else (int(number) if float(number).is_integer() else value)
        return value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: _coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), root) for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(v, schema["items"], root) for v in value]
    return value


def validate_config(config: dict, schema_path) -> dict:
    """Validate ``config``, fill defaults and resolve presets; return a new dict.

    Each model section (features, nrf, train, linear) is resolved as
    schema defaults <- ``presets[dataset]`` <- the top-level section.
    ``schema_path`` is the workflow's schemas/config.schema.yaml.
    """
    schema = load_schema(schema_path)
    config = _coerce(copy.deepcopy(dict(config)), schema, schema)
    _check_finite(config)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    # Model sections are layered below, so their schema defaults must not be
    # filled into a partial override before the preset is applied.
    overrides = {s: config.pop(s, {}) for s in MODEL_SECTIONS}
    _fill_defaults(config, schema, schema)

    preset = config["presets"].get(config["dataset"], {})
    for section in MODEL_SECTIONS:
        merged = section_defaults(schema, section)
        merged.update(preset.get(section, {}))
        merged.update(overrides[section])
        config[section] = merged

    _check_sizes(config)
    return config


def training_images(config: dict) -> int:
    """Training images per subject before any validation split."""
    if config["dataset"] == "simulated":
        return config["simulation"]["n_train_images"]
    return NSD_TRAIN_IMAGES


def test_sessions(config: dict) -> int:
    """Sessions every subject of the dataset completed: the shared images shown
    within them are the test set under ``test_images: seen_by_all``.

    NSD: the fewest sessions any of its eight subjects completed (30), so the
    set is the same for every subject (907 images). A simulated tree gives
    all its subjects the same sessions, so there it is every shared image.
    """
    if config["dataset"] == "nsd":
        return min(NSD_SESSIONS.values())
    return len(_simulated_sessions(config))


def max_test_images(config: dict) -> int:
    """The most test images a subject can have: the simulation's ``n_test_images``
    (every subject sees all of them), or NSD's 907 shared images seen by all
    (1,000 under ``test_images: seen_by_subject``). A ``sessions:`` subset can
    leave fewer, known only once the preparation rule has read the design."""
    if config["dataset"] == "simulated":
        return config["simulation"]["n_test_images"]
    return NSD_TEST_IMAGES_SEEN_BY_ALL if config["test_images"] == "seen_by_all" else NSD_SHARED_IMAGES


def _check_finite(value, key: str = "") -> None:
    """Stop at any NaN or infinite number anywhere in the config, naming its key:
    the schema's bounds let NaN through (every comparison with it is false)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{key}': {value} is not a finite number; allowed values: finite numbers")


def _simulated_sessions(config: dict) -> list[int]:
    sim = config["simulation"]
    trials = (sim["n_train_images"] + sim["n_test_images"]) * sim["repeats"]
    return list(range(1, trials // sim["trials_per_session"] + 1))


def sessions_for(config: dict, subject: str) -> list[int]:
    """1-based session numbers of ``subject`` the run reads."""
    if subject in config["sessions"]:
        return list(range(1, config["sessions"][subject] + 1))
    if config["dataset"] == "simulated":
        return _simulated_sessions(config)
    return list(range(1, NSD_SESSIONS[subject] + 1))


def _check_sizes(config: dict) -> None:
    """Checks across keys that a schema cannot express.

    ``shots`` against a ``sessions:`` subset is checked where the trials are
    known: by the preparation rule, before it reads any betas.
    """
    if config["dataset"] == "simulated":
        sim = config["simulation"]
        trials = (sim["n_train_images"] + sim["n_test_images"]) * sim["repeats"]
        if trials % sim["trials_per_session"]:
            raise ConfigError(
                f"config key 'simulation.trials_per_session': {sim['trials_per_session']} does not divide "
                f"the {trials} simulated trials ((n_train_images + n_test_images) x repeats)"
            )
    n_train = training_images(config)
    if config["protocol"] == "clean":
        n_train = int(n_train * (1 - config["val_fraction"]))
    too_many = [n for n in config["shots"] if n > n_train]
    if too_many:
        raise ConfigError(
            f"config key 'shots': {too_many} exceed the {n_train} training images per subject "
            f"({config['dataset']} dataset, {config['protocol']} protocol); allowed values: 1..{n_train}"
        )
    for subject, n in config["sessions"].items():
        if config["dataset"] == "nsd" and n > NSD_SESSIONS[subject]:
            limit = NSD_SESSIONS[subject]
            raise ConfigError(
                f"config key 'sessions.{subject}': {n} sessions, but NSD released {limit}; allowed values: 1..{limit}"
            )
        if config["dataset"] == "simulated" and n > len(_simulated_sessions(config)):
            sim, limit = config["simulation"], len(_simulated_sessions(config))
            raise ConfigError(
                f"config key 'sessions.{subject}': {n} sessions, but the simulation has {limit} "
                f"((n_train_images {sim['n_train_images']} + n_test_images {sim['n_test_images']}) "
                f"x repeats {sim['repeats']} / trials_per_session {sim['trials_per_session']}); "
                f"allowed values: 1..{limit}"
            )
    ignored = sorted(set(config["sessions"]) - set(config["subjects"]))
    if ignored:
        raise ConfigError(
            f"config key 'sessions': {', '.join(ignored)} not in 'subjects' ({', '.join(config['subjects'])}); "
            "a session count for a subject that is not run would be silently ignored"
        )
    for section in ("train", "universal"):
        if config[section]["min_steps"] > config[section]["max_steps"]:
            raise ConfigError(
                f"config key '{section}.min_steps': {config[section]['min_steps']} exceeds "
                f"'{section}.max_steps' ({config[section]['max_steps']})"
            )
    _check_test_image_counts(config)
    url = urlparse(config["nsd"]["base_url"])
    if url.scheme not in ("http", "https") or not url.netloc or " " in config["nsd"]["base_url"]:
        raise ConfigError(
            f"config key 'nsd.base_url': {config['nsd']['base_url']!r} is not an http(s) URL "
            "(expected like https://natural-scenes-dataset.s3.amazonaws.com)"
        )


def _check_test_image_counts(config: dict) -> None:
    """Keys that pick test images stay within the test set (max_test_images)."""
    limit = max_test_images(config)
    source = (
        f"the simulation's n_test_images ({limit})"
        if config["dataset"] == "simulated"
        else f"NSD's {limit} test images under test_images: {config['test_images']}"
    )
    beyond = [i for i in config["decoder"]["figure_images"] if i >= limit]
    if beyond:
        raise ConfigError(
            f"config key 'decoder.figure_images': {beyond} lie beyond {source} "
            f"(positions among the sorted test images); allowed values: 0..{limit - 1}"
        )
    for key in ("test_images", "contrast_images"):
        n = config["volumes"][key]
        if n > limit:
            raise ConfigError(
                f"config key 'volumes.{key}': {n} images, more than {source}; allowed values: 1..{limit}"
            )
