from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.adaptation_tables import write_adaptation_table  # noqa: E402

p, i, o = snakemake.params, snakemake.input, snakemake.output
table = write_adaptation_table(
    p.table,
    i.cells,
    target=p.target,
    nrf_full=i.nrf_full,
    linear_full=i.linear_full,
    paper_csv=i.paper,
    protocol=p.protocol,
    dataset=p.dataset,
    test_images=p.test_images,
    out_csv=o.csv,
    out_md=o.md,
    out_html=o.html,
    semantic_csvs=i.semantic,
)
log.info("wrote %d rows", len(table))
