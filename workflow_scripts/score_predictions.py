from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.scoring import score_predictions  # noqa: E402

score_predictions(snakemake.input.predictions, snakemake.input.prepared, snakemake.output[0])
