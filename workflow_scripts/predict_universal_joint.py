from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.transfer import predict_joint  # noqa: E402

predict_joint(
    snakemake.input.checkpoint,
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    device=snakemake.params.device,
    log=log,
)
