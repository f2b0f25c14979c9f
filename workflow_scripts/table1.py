from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.tables import write_table1  # noqa: E402

p, i = snakemake.params, snakemake.input
semantic = {"Measured fMRI": i.semantic_measured, "Linear Regression": i.semantic_linear, "NRF": i.semantic_nrf}
write_table1(
    {"Linear Regression": snakemake.input.linear, "NRF": snakemake.input.nrf},
    paper_csv=snakemake.input.paper,
    subjects=p.subjects,
    protocol=p.protocol,
    dataset=p.dataset,
    test_images=p.test_images,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_html=snakemake.output.html,
    semantic_csvs=semantic if i.semantic_nrf else None,
)
