from nrf.runlog import start

log = start(snakemake)
from nrf.data.prepare import prepare_subject  # noqa: E402

p = snakemake.params
prepare_subject(
    p.root,
    snakemake.wildcards.subject,
    sessions=p.sessions,
    protocol=p.protocol,
    val_fraction=p.val_fraction,
    seed=p.seed,
    betas_format=p.betas_format,
    expected_voxels=p.expected_voxels,
    out_path=snakemake.output[0],
    log=log,
)
