from nrf.runlog import start

log = start(snakemake)
from nrf.features.pipeline import extract_for_subjects  # noqa: E402

p = snakemake.params
extract_for_subjects(
    p.extractor,
    p.options,
    stimuli_path=snakemake.input.stimuli,
    prepared_paths=snakemake.input.prepared,
    out_path=snakemake.output[0],
    device=p.device,
    log=log,
)
