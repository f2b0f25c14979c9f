from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.transfer import subset_scores  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
subset_scores(
    "nrf",
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    n_train=int(w.n),
    seed=p.seed + int(w.draw),
    model_options=p.model_options,
    train_options=p.train_options,
    device=p.device,
    log=log,
)
