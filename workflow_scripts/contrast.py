from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.fig_contrast import plot_contrast  # noqa: E402
from nrf.volumes.contrasts import query_contrast  # noqa: E402

p = snakemake.params
out = snakemake.output
summary = query_contrast(
    snakemake.input.checkpoint,
    snakemake.input.images_a,
    snakemake.input.images_b,
    out.t[: -len("_t.nii.gz")],
    resolution=p.resolution,
    mask=p.mask,
    labels=p.labels,
    prepared=snakemake.input.prepared,
    features=snakemake.input.features,
    stimulus_size=p.stimulus_size,
    chunk_points=p.chunk_points,
    device=p.device,
    simulation=p.simulation,
    subjects=p.subjects,
    seed=p.seed,
    subject=snakemake.wildcards.subject,
    log=log,
)
plot_contrast(
    out.t, out.png, out.pdf, title=f"NRF {snakemake.wildcards.subject}", label_a=p.labels[0], label_b=p.labels[1]
)
