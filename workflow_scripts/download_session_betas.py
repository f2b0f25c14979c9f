from nrf.runlog import start

log = start(snakemake)
from nrf.data.fetch_nsd import fetch_session_betas  # noqa: E402
from nrf.data.nsd_tree import subject_voxels  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
voxel_ijk, grid_shape = subject_voxels(p.root, w.subject)
stats = fetch_session_betas(
    p.base_url,
    p.root,
    w.subject,
    int(w.session),
    voxel_ijk,
    grid_shape,
    source=p.source,
    block_size=p.block_size,
    cache_bytes=p.cache_bytes,
)
log.info("session cost (bytes and requests against the whole file): %s", stats)
