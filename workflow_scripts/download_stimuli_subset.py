from nrf.runlog import start

log = start(snakemake)
from nrf.data.fetch_nsd import fetch_stimuli_subset, seen_image_ids  # noqa: E402

p = snakemake.params
image_ids = seen_image_ids(p.root, p.sessions, trials_per_session=p.trials_per_session)
log.info("%d images seen by %s", len(image_ids), p.sessions)
stats = fetch_stimuli_subset(p.base_url, p.root, image_ids, out_path=snakemake.output[0])
log.info("stimuli cost: %s", stats)
