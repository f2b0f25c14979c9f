from nrf.runlog import start

log = start(snakemake)
from nrf.data.prepare import prepare_subject  # noqa: E402
from nrf.data.roi_voxels import PROBE_ROIS  # noqa: E402

# the prepared subject's steps at Figure 4's ROI voxels outside nsdgeneral
p = snakemake.params
prepare_subject(
    p.root,
    snakemake.wildcards.subject,
    sessions=p.sessions,
    protocol=p.protocol,
    val_fraction=p.val_fraction,
    seed=p.seed,
    betas_format=p.betas_format,
    test_images=p.test_images,
    test_sessions=p.test_sessions,
    expected_test_images=p.expected_test_images,
    min_train_images=p.min_train_images,
    voxel_set=PROBE_ROIS,
    probe_rois=p.probe_rois,
    out_path=snakemake.output[0],
    log=log,
)
