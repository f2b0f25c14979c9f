from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.tables import write_table1  # noqa: E402

i, p = snakemake.input, snakemake.params
# the paper's method names, in its order, then the peers this run adds
names = {
    "linear": "Linear Regression",
    "fwrf": "fWRF",
    "ridge": "Ridge (per-voxel CV)",
    "universal": "Universal (single subject)",
    "universal_joint": "Universal (all subjects)",
    "nrf": "NRF",
}
n = len(p.subjects)
per_model = lambda files: {  # noqa: E731
    names[m]: list(files)[k * n : (k + 1) * n] for k, m in enumerate(p.models)
}
semantic = None
if i.semantic_measured:
    semantic = {"Measured fMRI": list(i.semantic_measured), **per_model(i.semantic)}
write_table1(
    {names[m]: list(getattr(i, m)) for m in names},
    paper_csv=i.paper,
    subjects=p.subjects,
    protocol=p.protocol,
    dataset=p.dataset,
    test_images=p.test_images,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_html=snakemake.output.html,
    semantic_csvs=semantic,
    voxel_csvs=list(i.voxels),
    retrieval_csvs=per_model(i.retrieval),
    quoted=("MindSimulator (Trials=1)", "MindSimulator (Trials=5)"),
    out_roi_csv=snakemake.output.rois,
)
