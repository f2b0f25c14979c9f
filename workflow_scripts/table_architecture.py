from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.ablation_tables import write_architecture_table  # noqa: E402

p = snakemake.params
name = {"depth": "table5", "width": "table6"}[p.axis]
table = write_architecture_table(
    name, p.axis, p.values, list(snakemake.input.scores), trainings=list(snakemake.input.trainings),
    paper_csv=snakemake.input.paper, subject=p.subject,
    protocol=p.protocol, dataset=p.dataset, test_images=p.test_images, fixed=p.fixed, max_steps=p.max_steps,
    out_csv=snakemake.output.csv, out_md=snakemake.output.md, out_html=snakemake.output.html,
    seeds=p.get("seeds"), min_steps=p.get("min_steps"),
)
log.info("%s:\n%s", name, table.to_string())
