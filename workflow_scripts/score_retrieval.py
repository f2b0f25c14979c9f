from nrf.runlog import start

log = start(snakemake)
from nrf.retrieval import write_retrieval  # noqa: E402

write_retrieval(snakemake.input.predictions, snakemake.input.prepared, snakemake.output[0], log=log)
