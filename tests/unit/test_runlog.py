"""What every rule's script does first (nrf.runlog.start), in a fresh process as Snakemake runs it."""

import subprocess
import sys
import textwrap


def _job(tmp_path, body: str, threads: int = 3) -> str:
    script = textwrap.dedent(f"""
        import sys
        from types import SimpleNamespace
        from nrf.runlog import start
        snakemake = SimpleNamespace(threads={threads}, log=[{str(tmp_path / 'job.log')!r}], rule="demo",
                                    wildcards={{}}, params={{}})
        log = start(snakemake)
    """) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_job_that_needs_no_torch_does_not_load_it(tmp_path):
    assert _job(tmp_path, 'print("torch" in sys.modules)') == "False"
    assert "rule demo" in (tmp_path / "job.log").read_text()


def test_torch_imported_after_start_uses_the_rules_threads(tmp_path):
    # one thread, where torch left alone would take every core
    assert _job(tmp_path, "import torch; print(torch.get_num_threads())", threads=1) == "1"
