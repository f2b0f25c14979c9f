"""The settings table: every setting each experiment of this run uses, where it
comes from, beside the paper's and the authors' value (nrf.reporting.settings)."""

from nrf.runlog import start

log = start(snakemake)
from nrf.reporting.settings import build_settings  # noqa: E402

i, p, o = snakemake.input, snakemake.params, snakemake.output
embedded = list(i.embedded)
rows = build_settings(
    embedded_path=embedded[0] if embedded else None, configfile_paths=list(i.configfiles),
    configfile_names=p.configfile_names, command_line=p.command_line, schema_path=i.schema,
    held_config=snakemake.config, out_csv=o.csv, out_md=o.md, log=log,
)
