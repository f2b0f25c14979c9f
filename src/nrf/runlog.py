"""What every rule's script does first: log to the rule's log, bound threads,
and make sure an error reaches that log before the job dies."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable

import nrf

_logger = logging.getLogger(__name__)


def start(snakemake) -> logging.Logger:
    """Send logging to ``snakemake.log[0]`` and use ``snakemake.threads`` threads.

    Thread pools are bounded because Snakemake already runs jobs side by side:
    one job per core, each with the threads its rule declared. An uncaught
    exception is written, with its traceback, into the rule's log before the
    process exits: Snakemake points the user at that file, on a cluster too.
    """
    threads = str(snakemake.threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    logging.basicConfig(
        filename=snakemake.log[0],
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    log = logging.getLogger(f"nrf.{snakemake.rule}")
    _log_uncaught_exceptions(log)
    # torch takes its thread count from OMP_NUM_THREADS (capped at the cores)
    # when it is imported, so it is told directly only if already loaded:
    # importing it here would cost every job, table builders included, ~3 s
    # and ~600 MB.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(snakemake.threads)
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    log.info("library %s", Path(nrf.__file__).parent)
    log.info("CPU kernels %s (nrf.REPRODUCIBLE_MATH)", nrf.REPRODUCIBLE_MATH)
    log.info("params %s", dict(snakemake.params))
    return log


def _log_uncaught_exceptions(log: logging.Logger) -> None:
    previous = sys.excepthook

    def hook(kind, value, traceback):
        log.error("job failed: %s: %s", kind.__name__, value, exc_info=(kind, value, traceback))
        for handler in logging.getLogger().handlers:
            handler.flush()
        previous(kind, value, traceback)

    sys.excepthook = hook


def export_library(library: str) -> None:
    """Put ``library`` (the workflow's src/) first on PYTHONPATH, so every job
    started from this process, local, conda or cluster, imports it rather than
    whatever copy of nrf its environment holds."""
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != library]
    os.environ["PYTHONPATH"] = os.pathsep.join([library, *rest])


#: glibc's malloc returns every freed block above 128 KB to the kernel (mmap/munmap)
#: and faults it back in at the next allocation; a CPU training step allocates
#: several such activations (16 x 256 x 128 float32 = 2 MB each), so a tenth
#: of its time went to page faults. Blocks up to 64 MB stay in the heap, and
#: up to 128 MB of free heap is kept. Where memory comes from changes no number.
ALLOCATOR_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


def export_allocator_settings() -> None:
    """Give every job started from this process :data:`ALLOCATOR_SETTINGS`
    (glibc reads them at start-up), unless the user set them."""
    for var, value in ALLOCATOR_SETTINGS.items():
        os.environ.setdefault(var, value)


def as_logfn(log) -> Callable[[str], None]:
    """A progress reporter from a Logger, a callable taking a message, or None
    (this module's logger): the library's long steps take any of the three."""
    if log is None:
        return _logger.info
    if hasattr(log, "info"):
        return log.info
    return log
