from nrf.runlog import start

log = start(snakemake)
import pandas as pd  # noqa: E402

from nrf.experiments.probes import (  # noqa: E402
    run_shuffle_cell,
    run_shuffle_fit_cell,
    write_fit_rows,
    write_rows,
)

p = snakemake.params
n = int(snakemake.wildcards.n)
common = {"protocol": p.protocol, "seed": p.seed, "train_options": p.train_options, "model_options": p.model_options,
          "scratch_steps": p.scratch_steps, "min_steps": p.min_steps, "atlases": p.atlases, "device": p.device,
          "log": log}
# with probes.shuffle_nrf the rule asks for a second output, the training-set fit (rules/common.smk)
fit_csv = snakemake.output.get("fit")
if fit_csv is None:
    # the intact arm is the adaptation cell's NRF scratch where that cell exists (rules/common.smk)
    rows = [run_shuffle_cell(snakemake.input.prepared, snakemake.input.features, n, draw,
                             intact_cell=snakemake.input.get(f"intact{draw}"), **common)
            for draw in range(p.draws)]
else:
    cells = [run_shuffle_fit_cell(snakemake.input.prepared, snakemake.input.features, n, draw,
                                  linear_options=p.linear_options, **common) for draw in range(p.draws)]
    rows = [r for r, _ in cells]
    write_fit_rows(pd.concat([f for _, f in cells], ignore_index=True), fit_csv)
write_rows(pd.concat(rows, ignore_index=True), snakemake.output[0])
