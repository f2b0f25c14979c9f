from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.transfer import train_joint  # noqa: E402

p = snakemake.params
train_joint(
    list(snakemake.input.prepared),
    snakemake.input.features,
    snakemake.output[0],
    model_options=p.model_options,
    train_options=p.train_options,
    seed=p.seed,
    device=p.device,
    log=log,
)
