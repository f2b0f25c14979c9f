from nrf.runlog import start

log = start(snakemake)
from nrf.universal_files import transfer_scores  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
transfer_scores(
    snakemake.input.checkpoint,
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    n_train=int(w.n),
    seed=p.seed + int(w.draw),
    train_options=p.train_options,
    device=p.device,
    log=log,
)
