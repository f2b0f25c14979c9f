from nrf.runlog import start

log = start(snakemake)
from nrf.data.fetch_nsd import fetch_session_betas  # noqa: E402
from nrf.data.roi_voxels import PROBE_ROIS, tree_outside_voxels  # noqa: E402

# one session's betas at Figure 4's ROI voxels outside nsdgeneral (the probe's target)
p, w = snakemake.params, snakemake.wildcards
voxel_ijk, grid_shape = tree_outside_voxels(p.root, w.subject, p.probe_rois)
stats = fetch_session_betas(
    p.base_url,
    p.root,
    w.subject,
    int(w.session),
    voxel_ijk,
    grid_shape,
    voxel_set=PROBE_ROIS,
    source=p.source,
    block_size=p.block_size,
    cache_bytes=p.cache_bytes,
)
log.info("session cost (bytes and requests against the whole file): %s", stats)
