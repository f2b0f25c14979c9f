from nrf.runlog import start

log = start(snakemake)
from nrf.data.fetch_nsd import fetch_stimuli_subset  # noqa: E402
from nrf.data.nsd_tree import images_seen  # noqa: E402

p = snakemake.params
image_ids = images_seen(p.root, p.sessions, p.trials_per_session)
log.info("%d images seen by %s", len(image_ids), p.sessions)
stats = fetch_stimuli_subset(p.base_url, p.root, image_ids, out_path=snakemake.output[0])
log.info("stimuli cost: %s", stats)
