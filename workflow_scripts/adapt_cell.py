from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.adaptation import run_cell, write_cell  # noqa: E402

p, w, i = snakemake.params, snakemake.wildcards, snakemake.input
results, cell = run_cell(
    i.prepared,
    i.features,
    {base: i[base] for base in p.bases},
    int(w.n),
    int(w.draw),
    protocol=p.protocol,
    seed=p.seed,
    train_options=p.train_options,
    model_options=p.model_options,
    linear_options=p.linear_options,
    finetune_steps=p.finetune_steps,
    scratch_steps=p.scratch_steps,
    device=p.device,
    log=log,
)
write_cell(results, **cell, out_hdf5=snakemake.output.hdf5, out_csv=snakemake.output.csv)
