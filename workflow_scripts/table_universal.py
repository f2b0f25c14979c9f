from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.universal import write_table_universal  # noqa: E402

i, p = snakemake.input, snakemake.params
write_table_universal(
    {
        "Universal (single)": {"scores": i.single, "retrieval": i.single_retrieval},
        "Universal (all subjects)": {"scores": i.joint, "retrieval": i.joint_retrieval},
        "NRF": {"scores": i.nrf, "retrieval": i.nrf_retrieval},
    },
    p.subjects,
    i.voxels,
    dataset=p.dataset,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_html=snakemake.output.html,
)
