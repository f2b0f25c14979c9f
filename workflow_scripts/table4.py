from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.ablation_tables import write_table4  # noqa: E402

p = snakemake.params
table = write_table4(
    snakemake.input.rows, paper_csv=snakemake.input.paper, base=p.base, target=p.target, protocol=p.protocol,
    dataset=p.dataset, test_images=p.test_images, finetune_steps=p.finetune_steps,
    out_csv=snakemake.output.csv, out_md=snakemake.output.md, out_html=snakemake.output.html,
)
log.info("table 4:\n%s", table.to_string())
