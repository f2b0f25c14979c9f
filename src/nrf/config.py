"""Config validation: the schema, its defaults, the per-dataset presets.

Called once by the Snakefile at start-up, so a bad config stops the run
before any job starts, with a message naming the key and what it allows.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from nrf.data.nsd_layout import NSD_SESSIONS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
# Sections a dataset's preset fills and a top-level key overrides.
MODEL_SECTIONS = ("features", "nrf", "train", "linear")
# Training images per subject in real NSD: 10,000 minus the 1,000 shared.
NSD_TRAIN_IMAGES = 9000


class ConfigError(ValueError):
    """A config value the pipeline cannot run with."""


def load_schema(path=SCHEMA_PATH) -> dict:
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


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config``, fill defaults and resolve presets; return a new dict.

    Each model section (features, nrf, train, linear) is resolved as
    schema defaults <- ``presets[dataset]`` <- the top-level section.
    """
    schema = schema or load_schema()
    config = copy.deepcopy(dict(config))
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


def sessions_for(config: dict, subject: str) -> list[int]:
    """1-based session numbers of ``subject`` the run reads."""
    if subject in config["sessions"]:
        return list(range(1, config["sessions"][subject] + 1))
    if config["dataset"] == "simulated":
        sim = config["simulation"]
        trials = (sim["n_train_images"] + sim["n_test_images"]) * sim["repeats"]
        return list(range(1, trials // sim["trials_per_session"] + 1))
    return list(range(1, NSD_SESSIONS[subject] + 1))


def _check_sizes(config: dict) -> None:
    """Checks across keys that a schema cannot express."""
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
        limit = NSD_SESSIONS[subject]
        if config["dataset"] == "nsd" and n > limit:
            raise ConfigError(
                f"config key 'sessions.{subject}': {n} sessions, but NSD released {limit}; allowed values: 1..{limit}"
            )
    if config["dataset"] == "simulated":
        sim = config["simulation"]
        trials = (sim["n_train_images"] + sim["n_test_images"]) * sim["repeats"]
        if trials % sim["trials_per_session"]:
            raise ConfigError(
                f"config key 'simulation.trials_per_session': {sim['trials_per_session']} does not divide "
                f"the {trials} simulated trials ((n_train_images + n_test_images) x repeats)"
            )
