from nrf.runlog import start

log = start(snakemake)
from nrf.features.pipeline import extract_seen_images  # noqa: E402

p = snakemake.params
extract_seen_images(
    p.extractor,
    p.options,
    stimuli_path=snakemake.input.stimuli,
    expdesign_path=snakemake.input.expdesign,
    sessions=p.sessions,
    trials_per_session=p.trials_per_session,
    out_path=snakemake.output[0],
    device=p.device,
    log=log,
)
