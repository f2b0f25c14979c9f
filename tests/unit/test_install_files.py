"""Install files agree: one torch/torchvision pair everywhere."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _pins(lines):
    return {line.split("=")[0].strip(): line.strip() for line in lines if line.startswith(("torch", "torchvision"))}


def test_conda_envs_pin_the_constraints_pair():
    constraints = _pins((REPO / "constraints.txt").read_text().splitlines())
    assert constraints == {"torch": "torch===2.13.0", "torchvision": "torchvision==0.28.0"}
    # every env that installs torch pins the same pair; torch.yaml must be one of them
    torch_envs = []
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip = next((d["pip"] for d in env["dependencies"] if isinstance(d, dict)), [])
        names = {line.split("=")[0].split("<")[0].split(">")[0].strip() for line in pip}
        if names & {"torch", "torchvision", "open_clip_torch"}:
            torch_envs.append(env_file.name)
            assert _pins(pip) == constraints, env_file.name
    assert "torch.yaml" in torch_envs, torch_envs


def test_profiles_parse_and_declare_executor():
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["default-resources"]["mem_mb"] > 0
    local = yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())
    assert local["cores"] == "all"
