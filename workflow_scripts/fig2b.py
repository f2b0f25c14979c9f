from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.figure2 import figure2b  # noqa: E402
from nrf.reporting.style import save_figure  # noqa: E402

p, i, o = snakemake.params, snakemake.input, snakemake.output
fig = figure2b(i.cells, i.prepared, n_train=p.n_train, dataset=p.dataset, protocol=p.protocol)
save_figure(fig, o.png, o.pdf)
