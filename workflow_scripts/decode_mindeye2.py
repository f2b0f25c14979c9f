from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.mindeye2_inference import reconstruct  # noqa: E402
from nrf.devices import resolve_device  # noqa: E402

reconstruct(
    snakemake.input.inputs,
    snakemake.params.checkpoint_dir,
    snakemake.wildcards.subject,
    snakemake.output[0],
    device=resolve_device(snakemake.params.device),
    seed=snakemake.params.seed,
    log=log,
)
