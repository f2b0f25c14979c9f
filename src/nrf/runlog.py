"""What every rule's script does first: log to the rule's log, bound threads."""

from __future__ import annotations

import logging
import os


def start(snakemake) -> logging.Logger:
    """Send logging to ``snakemake.log[0]`` and use ``snakemake.threads`` threads.

    Thread pools are bounded because Snakemake already runs jobs side by side:
    one job per core, each with the threads its rule declared.
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
    try:
        import torch

        torch.set_num_threads(snakemake.threads)
    except ImportError:  # data rules may run in an env without torch
        pass
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    log.info("params %s", dict(snakemake.params))
    return log
