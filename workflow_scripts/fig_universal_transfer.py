from nrf.runlog import start

log = start(snakemake)
import pandas as pd  # noqa: E402

from nrf.reporting.universal import cell_curves, plot_transfer, universal_curve  # noqa: E402

i, p = snakemake.input, snakemake.params
# Universal transfer from its own score files (shot-major, draw-minor); NRF scratch, the
# finetune ensemble and Linear Regression from the target's adaptation cells, whose
# numbers Tables 2/7-9 and Figure 2a show
points = pd.concat(
    [
        universal_curve(list(i.universal), p.shots, p.draws),
        cell_curves(list(i.cells), target=p.target, shots=p.shots),
    ],
    ignore_index=True,
)
plot_transfer(
    points,
    target=p.target,
    dataset=p.dataset,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    out_csv=snakemake.output.csv,
    log=log,
)
