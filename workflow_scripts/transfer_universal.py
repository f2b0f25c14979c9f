from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.transfer import transfer_scores  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
transfer_scores(
    snakemake.input.checkpoint,
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    n_train=int(w.n),
    draw=int(w.draw),
    seed=p.seed,
    train_options=p.train_options,
    transfer_options=p.transfer_options,
    device=p.device,
    log=log,
)
