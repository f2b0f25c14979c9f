"""Every rule's conda env holds what its job imports (``--use-conda``).

The rules are read from rules/*.smk and the Snakefile as text (rule name ->
``conda:`` env file -> ``script:`` path), so renaming a rule needs no change
here. Each script's imports run in a child process behind an import guard
(tests/import_guard.py) that fails any package the env does not list, and the
imports written inside the nrf functions the script reaches are listed too;
the job itself never runs.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / "tests/import_guard.py"

# pip / conda package name -> the top-level names it installs, where they differ
IMPORT_NAMES = {
    "python": [],
    "pip": [],
    "pyyaml": ["yaml"],
    "pillow": ["PIL"],
    "matplotlib-base": ["matplotlib", "mpl_toolkits"],
    "scikit-image": ["skimage"],
    "scikit-learn": ["sklearn"],
    "open_clip_torch": ["open_clip"],
    "pytorch-lightning": ["pytorch_lightning", "lightning_fabric"],
    "dalle2-pytorch": ["dalle2_pytorch"],
    "sentence-transformers": ["sentence_transformers"],
    "huggingface_hub": ["huggingface_hub"],
    "python-dateutil": ["dateutil"],
}
# What an env provides besides its listed packages: MindEye2's own code in the
# git submodule vendor/MindEyeV2 (src/models.py, src/utils.py,
# src/modeling_git.py and generative_models' sgm), which
# nrf.decoding.mindeye2_inference puts on sys.path while it runs.
VENDORED = {"mindeye2.yaml": ["models", "utils", "modeling_git", "sgm"]}
# Heavy packages imported once before the per-script children fork (speed only).
PRELOAD = ["numpy", "scipy", "pandas", "h5py", "nibabel", "matplotlib.pyplot", "yaml", "jsonschema",
           "torch", "torchvision", "open_clip", "sklearn", "skimage", "nilearn", "himalaya", "PIL.Image"]


def _package_name(spec: str) -> str:
    spec = spec.split("@")[0].split(";")[0]
    return re.split(r"[\s=<>!~\[]", spec.strip(), maxsplit=1)[0].lower()


def env_import_names(env_file: Path) -> set[str]:
    """Top-level import names of everything an env file lists (conda and pip)."""
    env = yaml.safe_load(env_file.read_text())
    specs = []
    for dep in env["dependencies"]:
        specs.extend(dep["pip"] if isinstance(dep, dict) else [dep])
    names = set(VENDORED.get(env_file.name, []))
    for spec in specs:
        package = _package_name(spec)
        names.update(IMPORT_NAMES.get(package, [package.replace("-", "_")]))
    return names


def _directive(body: str, name: str) -> str | None:
    """The string value of ``name:`` in a rule's body (same line or the next)."""
    match = re.search(rf"^\s+{name}:[ \t]*(?:\n\s*)?(.*)$", body, re.M)
    if not match:
        return None
    value = re.fullmatch(r"""\s*(["'])(.+?)\1\s*,?\s*(#.*)?""", match.group(1))
    if not value:
        raise ValueError(f"{name}: {match.group(1)!r} is not a literal string; teach {Path(__file__).name} to read it")
    return value.group(2)


def workflow_rules() -> list[dict]:
    """``{rule, smk, env, script}`` of every rule that runs a script."""
    rules = []
    for smk in sorted([*(REPO / "rules").glob("*.smk"), REPO / "Snakefile"]):
        blocks = re.split(r"^(?:rule|checkpoint)\s+(\w+)\s*:", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top-level line
            rule = {"rule": name, "smk": smk.relative_to(REPO).as_posix(), "env": None, "script": None,
                    "unread": None}
            try:
                script, env = _directive(body, "script"), _directive(body, "conda")
            except ValueError as error:
                rules.append({**rule, "unread": str(error)})
                continue
            if script is None:
                continue
            rule["script"] = (smk.parent / script).resolve()
            rule["env"] = (smk.parent / env).resolve() if env else None
            rules.append(rule)
    return rules


RULES = workflow_rules()


def test_rules_were_found():
    assert len(RULES) > 20, [r["rule"] for r in RULES]
    assert {r["script"].name for r in RULES if r["script"]} >= {"adaptation_table.py", "fig_volume.py",
                                                               "query_images.py"}


@pytest.mark.parametrize("rule", RULES, ids=[r["rule"] for r in RULES])
def test_every_script_rule_names_an_existing_env_and_script(rule):
    assert rule["unread"] is None, f"rule {rule['rule']} ({rule['smk']}): {rule['unread']}"
    assert rule["env"] is not None, f"rule {rule['rule']} ({rule['smk']}) runs a script but has no conda: env"
    assert rule["env"].is_file(), f"rule {rule['rule']}: {rule['env']} does not exist"
    assert rule["script"].is_file(), f"rule {rule['rule']}: {rule['script']} does not exist"


@pytest.fixture(scope="module")
def import_checks():
    """The import guard's findings for every rule, in one child process."""
    return _guard_findings()


def _guard_findings(forbidden: frozenset = frozenset()) -> dict:
    """The import guard run over every rule's script, its env's packages
    allowed except ``forbidden``: {rule: findings}."""
    jobs = [
        {"rule": r["rule"], "script": str(r["script"]), "allowed": sorted(env_import_names(r["env"]) - forbidden)}
        for r in RULES if r["env"] is not None and r["env"].is_file() and r["script"] and r["script"].is_file()
    ]
    run = subprocess.run(
        [sys.executable, str(GUARD)], input=json.dumps({"preload": PRELOAD, "jobs": jobs}),
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return {r["rule"]: r for r in json.loads(run.stdout)}


@pytest.mark.parametrize("rule", RULES, ids=[r["rule"] for r in RULES])
def test_rule_env_holds_what_its_job_imports(rule, import_checks):
    if rule["rule"] not in import_checks:
        pytest.skip("no env or script (the test above fails)")
    found = import_checks[rule["rule"]]
    where = f"rule {rule['rule']} ({rule['smk']}, env {rule['env'].name}, script {rule['script'].name})"
    assert found["error"] is None, f"{where}: the script's imports fail: {found['error']}"
    problems = [f"{importer} imports {package} at start-up" for importer, package in found["at_import"]]
    problems += [f"{function} imports {package} when called" for function, package in found["lazy"]]
    assert not problems, f"{where}: not in {rule['env'].name}:\n  " + "\n  ".join(problems)


def test_env_import_names():
    names = env_import_names(REPO / "envs/decoding.yaml")
    assert {"skimage", "sklearn", "yaml", "open_clip", "himalaya", "torch", "torchvision"} <= names
    assert "python" not in names and "pip" not in names
    assert "sgm" in env_import_names(REPO / "envs/mindeye2.yaml")


def test_guard_catches_a_missing_package(tmp_path):
    """The guard fails an import the env lacks, at start-up and inside an nrf function."""
    script = tmp_path / "job.py"
    script.write_text("from nrf.runlog import start\nlog = start(snakemake)\nimport numpy\n"
                      "from nrf.volumes.images import export_images\n")
    jobs = [{"rule": "a", "script": str(script), "allowed": ["yaml"]},
            {"rule": "b", "script": str(script), "allowed": ["numpy", "h5py", "nibabel", "pandas", "scipy"]}]
    run = subprocess.run([sys.executable, str(GUARD)], input=json.dumps({"jobs": jobs}),
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    a, b = json.loads(run.stdout)
    assert a["at_import"] == [["__main__", "numpy"]] and a["error"] is None
    assert b["at_import"] == [] and b["error"] is None
    assert ["nrf.volumes.images.export_images", "PIL"] in b["lazy"]


# -- which jobs load torch (issue 22) -------------------------------------------
#: the rules whose jobs compute with torch: training, prediction, feature
#: extraction, decoding, the volume queries, and the Universal clusters figure
#: (it reads voxel embeddings out of a torch checkpoint). Every other job (data, scoring,
#: tables, most figures) must not import it: torch costs a job ~3 CPU-seconds
#: and ~600 MB before any work, and the default run starts ~180 jobs.
TORCH_RULES = {
    "extract_features", "train_encoder", "evaluate_encoder", "adapt_cell", "train_universal_joint",
    "train_universal_heldout", "evaluate_universal_joint", "transfer_universal", "ablation_finetune_strategy",
    "ablation_architecture", "probe_shuffle", "probe_transfer", "train_decoder", "decode_offline",
    "decode_mindeye2", "mindeye2_inputs", "score_decoding", "score_adaptation_decoding", "volumes",
    "query_volume", "build_fig_contrast", "build_table_resolution", "build_continuous_space",
    "build_fig_universal_clusters",
}
TORCH = {"torch", "torchvision", "open_clip"}


@pytest.fixture(scope="module")
def torch_checks():
    """The import guard run with torch forbidden: what each job would import of it."""
    return _guard_findings(frozenset(TORCH))


def test_only_rules_that_compute_with_torch_import_it(torch_checks):
    importing = {rule for rule, found in torch_checks.items()
                 if any(package in TORCH for _, package in found["at_import"] + found["lazy"])}
    assert importing - TORCH_RULES == set(), (
        f"these jobs load torch without computing with it: {sorted(importing - TORCH_RULES)}; "
        "import torch inside the function that needs it, or add the rule to TORCH_RULES if it computes")
    idle = (TORCH_RULES & set(torch_checks)) - importing
    assert not idle, f"listed in TORCH_RULES but their jobs never import torch: {sorted(idle)}"
