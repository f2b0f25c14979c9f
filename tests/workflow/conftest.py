"""One tiny simulated run of the whole default DAG (`all`), shared by the
workflow tests: it is the most expensive fixture of the suite, so it runs once."""

import pytest
import yaml
from tiny_workflow import TINY, run_snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A folder in which `snakemake all` ran on TINY."""
    workdir = tmp_path_factory.mktemp("tiny")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = run_snakemake(workdir, "all")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir
