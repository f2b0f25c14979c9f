"""The continuous-space experiment (issue 23): NRF between the voxels against the
simulator's truth, one subject and pooled subjects, over fields of finer and finer
structure. It simulates, prepares and trains its own small datasets in a scratch folder
(nrf.experiments.continuous says why) and writes the tidy CSV, a Markdown table and a figure."""

from nrf.runlog import start

log = start(snakemake)
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from nrf.devices import resolve_device  # noqa: E402
from nrf.experiments.continuous import SMALL_SIMULATION, run_continuous, write_outputs  # noqa: E402
from nrf.reporting.fig_continuous_space import continuous_space_figure  # noqa: E402
from nrf.reporting.style import save_figure  # noqa: E402

p, o = snakemake.params, snakemake.output
if p.simulation is None:
    raise ValueError("continuous_space needs the simulator's ground truth: run it on dataset=simulated")
device = resolve_device(p.device)
train = dict(p.train_options, device=device)
scratch = Path(tempfile.mkdtemp(prefix="continuous_", dir=Path(o.csv).parent))
try:
    table = run_continuous(
        # config's simulation section at the experiment's small size (params.sizes, else SMALL_SIMULATION)
        simulation={**p.simulation, **(p.get("sizes") or SMALL_SIMULATION)},
        subjects=p.subjects,
        target=p.target,
        seeds=p.seeds,
        fine_scales=p.fine_scales,
        fine_amplitude=p.fine_amplitude,
        nrf_options=p.nrf_options,
        train_options=train,
        linear_options=dict(p.linear_options, device=device),
        pooled_options=dict(train, max_steps=p.pooled_steps),
        finetune_options=dict(train, max_steps=p.finetune_steps),
        features_options=p.features_options,
        extractor=p.extractor,
        val_fraction=p.val_fraction,
        spacing_mm=p.lattice_mm,
        max_points=p.max_points,
        min_distance_mm=p.min_distance_mm,
        workdir=scratch,
        log=log,
    )
finally:
    shutil.rmtree(scratch, ignore_errors=True)
write_outputs(table, out_csv=o.csv, out_md=o.md)
save_figure(continuous_space_figure(table), o.png, o.pdf)
log.info("\n%s", table.to_string())
