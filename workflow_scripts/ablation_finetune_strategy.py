from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.ablations import run_finetune_strategies, write_strategy_rows  # noqa: E402

p = snakemake.params
rows = run_finetune_strategies(
    snakemake.input.base, snakemake.input.prepared, snakemake.input.features, p.n_train, p.draws,
    protocol=p.protocol, seed=p.seed, train_options=p.train_options, finetune_steps=p.finetune_steps,
    device=p.device, log=log, base=p.base,
    both_cells={int(k[len("both"):]): v for k, v in snakemake.input.items() if k.startswith("both")},
)
write_strategy_rows(rows, snakemake.output[0])
