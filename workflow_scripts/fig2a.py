from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.methods import LINEAR, SCRATCH  # noqa: E402
from nrf.frames import write_frame  # noqa: E402
from nrf.reporting.figure2 import fig2a_table, figure2a  # noqa: E402
from nrf.reporting.style import save_figure  # noqa: E402

p, i, o = snakemake.params, snakemake.input, snakemake.output
table = fig2a_table(i.cells, {SCRATCH: i.nrf_full, LINEAR: i.linear_full}, p.subjects)
write_frame(table, o.csv, "table")
save_figure(figure2a(table, n_full=p.n_full, dataset=p.dataset, protocol=p.protocol), o.png, o.pdf)
log.info("figure 2a: %s", table.to_dict("records"))
