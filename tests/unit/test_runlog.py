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


def test_jobs_inherit_the_allocator_settings_unless_the_user_set_them(monkeypatch):
    """rules/common.smk exports them; glibc reads them when each job starts, so a
    training step stops faulting its activations back in (benchmarks/nrf_step_profile.md)."""
    import os

    from nrf.runlog import ALLOCATOR_SETTINGS, export_allocator_settings

    for var in ALLOCATOR_SETTINGS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    export_allocator_settings()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(64 << 20)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "123"  # the user's value stays
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == str(64 << 20)
