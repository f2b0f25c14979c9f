from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.offline import decode_offline  # noqa: E402

decode_offline(
    snakemake.input.decoder,
    snakemake.input.prepared,
    snakemake.output[0],
    source=snakemake.params.source,
    predictions_path=getattr(snakemake.input, "predictions", None),
    feature_space=snakemake.params.feature_space,
    log=log,
)
