from nrf.runlog import start

log = start(snakemake)
from nrf.experiments.resolution import run_resolution  # noqa: E402

p = snakemake.params
i, o = snakemake.input, snakemake.output
if p.simulation is None:
    raise ValueError("table_resolution needs the simulator's ground truth: run it on dataset=simulated")
run_resolution(
    subject=p.subject,
    nrf_checkpoint=i.checkpoint,
    predictions={"Linear": i.linear, "NRF": i.nrf},
    prepared=i.prepared,
    features=i.features,
    simulation=p.simulation,
    subjects=p.subjects,
    seed=p.seed,
    out_csv=o.csv,
    out_md=o.md,
    out_truth=o.truth,
    spacing_mm=p.lattice_mm,
    max_points=p.max_points,
    chunk_points=p.chunk_points,
    device=p.device,
    log=log,
)
