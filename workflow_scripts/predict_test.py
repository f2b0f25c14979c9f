from nrf.runlog import start

log = start(snakemake)
from nrf.training.encoders import predict_test  # noqa: E402

predict_test(
    snakemake.input.checkpoint,
    snakemake.input.prepared,
    snakemake.input.features,
    snakemake.output[0],
    chunk_voxels=snakemake.params.chunk_voxels,
    device=snakemake.params.device,
)
