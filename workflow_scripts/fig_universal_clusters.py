from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.transfer import embeddings_of  # noqa: E402
from nrf.reporting.universal import clusters_figure  # noqa: E402

i, p = snakemake.input, snakemake.params
clusters_figure(
    embeddings_of(i.checkpoint, p.subjects),
    p.subjects,
    list(i.prepared),
    list(i.voxels),
    i.stimuli,
    k=p.k,
    n_top=p.n_top,
    seed=p.seed,
    dataset=p.dataset,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    out_csv=snakemake.output.csv,
    log=log,
)
