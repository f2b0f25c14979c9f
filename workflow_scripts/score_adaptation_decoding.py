from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.cells import score_cells  # noqa: E402
from nrf.devices import resolve_device  # noqa: E402

i = snakemake.input
score_cells(
    i.decoder,
    i.cells,
    i.stimuli,
    i.features,
    snakemake.output[0],
    device=resolve_device(snakemake.params.device),
    allow_download=snakemake.params.download_weights,
    every_method_at=snakemake.params.every_method_at,
    log=log,
)
