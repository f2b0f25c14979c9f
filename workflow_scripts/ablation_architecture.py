from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.ablations import capped, train_architecture  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
train_architecture(
    snakemake.input.prepared, snakemake.input.features, snakemake.output.checkpoint, snakemake.output.scores,
    model_options=dict(p.model_options, depth=int(w.depth), width=int(w.width)),
    train_options=capped(p.train_options, p.max_steps, p.min_steps), seed=p.seed, device=p.device, log=log,
    out_training=snakemake.output.training,
)
