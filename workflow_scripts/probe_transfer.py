from nrf.runlog import start

log = start(snakemake)
import pandas as pd  # noqa: E402

from nrf.experiments.probes import run_transfer_cell, write_rows  # noqa: E402

p = snakemake.params
n = int(snakemake.wildcards.n)
rois = {name: (roi["atlas"], roi["labels"]) for name, roi in p.rois.items()}
rows = [
    run_transfer_cell(
        snakemake.input.base, snakemake.input.prepared, snakemake.input.features, n, draw,
        target_probe_rois=snakemake.input.probe_rois, protocol=p.protocol, seed=p.seed, train_options=p.train_options,
        finetune_steps=p.finetune_steps, rois_wanted=rois, shift_mm=p.shift_mm, shift_direction=p.shift_direction,
        shift_seed=p.shift_seed, device=p.device, log=log,
    )
    for draw in range(p.draws)
]
write_rows(pd.concat(rows, ignore_index=True), snakemake.output[0])
