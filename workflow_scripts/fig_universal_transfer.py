from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.universal import curve_from_scores, plot_transfer, read_optional_curve  # noqa: E402

i, p = snakemake.input, snakemake.params


def by_shot(files):
    """{N: [scores CSV per draw]}: the inputs are listed shot-major, draw-minor."""
    return {n: files[k * p.draws : (k + 1) * p.draws] for k, n in enumerate(p.shots)}


finetune = read_optional_curve(p.finetune_csv)
if finetune is None:
    log.info("no %s yet: the NRF finetune-ensemble curve is left out", p.finetune_csv)
plot_transfer(
    {
        "Universal transfer (embeddings only)": curve_from_scores(by_shot(list(i.universal))),
        "NRF scratch": curve_from_scores(by_shot(list(i.nrf_scratch))),
        "NRF finetune-ensemble": finetune,
    },
    target=p.target,
    dataset=p.dataset,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    out_csv=snakemake.output.csv,
    log=log,
)
