from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.offline import train_offline_decoder  # noqa: E402

p = snakemake.params
train_offline_decoder(
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.input.stimuli,
    snakemake.output[0],
    image_size=p.image_size,
    alphas=p.alphas,
    cv=p.cv,
    log=log,
)
