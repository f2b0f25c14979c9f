from nrf.runlog import start

log = start(snakemake)
from nrf.data.fetch_nsd import fetch_key  # noqa: E402

result = fetch_key(snakemake.params.base_url, snakemake.wildcards.key, snakemake.params.root)
log.info("fetched %s", result)
