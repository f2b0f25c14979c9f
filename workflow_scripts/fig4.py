from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.figure4 import findings, write_figure4  # noqa: E402

summary = write_figure4(
    list(snakemake.input.shuffle) + list(snakemake.input.transfer),
    dataset=snakemake.params.dataset,
    protocol=snakemake.params.protocol,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    out_csv=snakemake.output.csv,
)
log.info("figure 4 points:\n%s", summary.to_string())
log.info("this run found:\n%s", "\n".join(findings(summary)))
