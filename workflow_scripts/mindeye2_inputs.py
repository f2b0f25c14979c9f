from nrf.runlog import start

log = start(snakemake)
from nrf.decoding.mindeye2 import prepare_mindeye2_inputs_from_files  # noqa: E402

p = snakemake.params
try:
    prepare_mindeye2_inputs_from_files(
        snakemake.input.prepared,
        getattr(snakemake.input, "predictions", None),
        snakemake.output[0],
        source=p.source,
        checkpoint_dir=p.checkpoint_dir,
        scaling=p.scaling,
        log=log,
    )
except (FileNotFoundError, KeyError, ValueError) as error:
    log.error("%s", error)  # the reason in the rule's log, not only on the console
    raise
