from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.figure2 import figure2b, save  # noqa: E402

p, i, o = snakemake.params, snakemake.input, snakemake.output
save(figure2b(i.cells, i.prepared, n_train=p.n_train, dataset=p.dataset, protocol=p.protocol), o.png, o.pdf)
