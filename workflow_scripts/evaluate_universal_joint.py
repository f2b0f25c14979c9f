from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.scoring import score_test  # noqa: E402
from nrf.experiments.transfer import predict_joint  # noqa: E402

i, o = snakemake.input, snakemake.output
predict_joint(i.checkpoint, i.prepared, i.features, o.predictions, device=snakemake.params.device, log=log)
score_test(o.predictions, i.prepared, o.scores, o.retrieval, log=log)
