from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.figure3 import write_figure3  # noqa: E402

p = snakemake.params
write_figure3(
    {source: snakemake.input[source] for source in p.sources},
    snakemake.input.stimuli,
    snakemake.output.png,
    snakemake.output.pdf,
    rows=p.rows,
    subject=p.subject,
    backend=p.backend,
)
log.info("wrote %s and %s", snakemake.output.png, snakemake.output.pdf)
