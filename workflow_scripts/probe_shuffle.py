from nrf.runlog import start

log = start(snakemake)
import pandas as pd  # noqa: E402

from nrf.experiments.probes import run_shuffle_cell, write_rows  # noqa: E402

p = snakemake.params
n = int(snakemake.wildcards.n)
rows = [
    run_shuffle_cell(
        snakemake.input.prepared, snakemake.input.features, n, draw, protocol=p.protocol, seed=p.seed,
        train_options=p.train_options, model_options=p.model_options, scratch_steps=p.scratch_steps,
        atlases=p.atlases, device=p.device, log=log,
    )
    for draw in range(p.draws)
]
write_rows(pd.concat(rows, ignore_index=True), snakemake.output[0])
