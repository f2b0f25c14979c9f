from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.fig_volume import fig_volume  # noqa: E402

p = snakemake.params
info = fig_volume(
    snakemake.output.png,
    snakemake.output.pdf,
    volumes={p.resolutions[0]: snakemake.input.coarse, p.resolutions[1]: snakemake.input.fine},
    prepared=snakemake.input.prepared,
    simulation=p.simulation,
    subjects=p.subjects,
    seed=p.seed,
    n_images=p.n_images,
)
log.info("fig_volume: %s", info)
