from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.scoring import score_reconstructions  # noqa: E402
from nrf.devices import resolve_device  # noqa: E402

score_reconstructions(
    snakemake.input.recon,
    snakemake.input.stimuli,
    snakemake.input.features,
    snakemake.output[0],
    device=resolve_device(snakemake.params.device),
    allow_download=snakemake.params.download_weights,
    log=log,
)
