from nrf.runlog import start

log = start(snakemake)
from nrf.data.simulate import simulate_nsd_tree  # noqa: E402

p = snakemake.params
summary = simulate_nsd_tree(p.root, subjects=p.subjects, seed=p.seed, **p.simulation)
log.info("simulated tree: %s", summary)
