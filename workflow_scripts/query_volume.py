from nrf.runlog import start

log = start(snakemake)
from nrf.volumes.query import query_volume  # noqa: E402

p = snakemake.params
query_volume(
    snakemake.input.checkpoint,
    snakemake.input.images,
    snakemake.output.nifti,
    resolution=float(snakemake.wildcards.resolution),
    mask=p.mask,
    prepared=snakemake.input.prepared,
    features=snakemake.input.features,
    stimulus_size=p.stimulus_size,
    chunk_points=p.chunk_points,
    device=p.device,
    log=log,
)
