from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.voxels import write_voxel_table  # noqa: E402

write_voxel_table(
    snakemake.input.prepared,
    snakemake.output[0],
    noiseless=snakemake.input.get("noiseless"),
    repeats=snakemake.params.repeats,
    log=log,
)
