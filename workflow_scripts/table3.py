from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.adaptation_tables import write_table3  # noqa: E402

p, o = snakemake.params, snakemake.output
table = write_table3(
    snakemake.input.cells,
    paper_csv=snakemake.input.paper,
    protocol=p.protocol,
    dataset=p.dataset,
    test_images=p.test_images,
    out_csv=o.csv,
    out_md=o.md,
    out_html=o.html,
    semantic_csvs=snakemake.input.semantic,
)
log.info("wrote %d rows", len(table))
