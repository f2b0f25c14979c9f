from nrf.runlog import start

log = start(snakemake)
from nrf.training.encoders import train_encoder  # noqa: E402

p = snakemake.params
train_encoder(
    snakemake.wildcards.model,
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    model_options=p.model_options,
    train_options=p.train_options,
    n_train=None,
    seed=p.seed,
    device=p.device,
    log=log,
)
