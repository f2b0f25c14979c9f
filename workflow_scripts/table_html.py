"""A table the report shows inline: the HTML page of a CSV another rule wrote
(Snakemake's report offers a CSV only as a download)."""

from nrf.runlog import start

log = start(snakemake)
from pathlib import Path  # noqa: E402

from nrf.atomic import atomic_output  # noqa: E402
from nrf.frames import read_frame  # noqa: E402
from nrf.reporting.format import to_html  # noqa: E402

p, i = snakemake.params, snakemake.input
table = read_frame(i.csv, "table")  # a failed checksum or a parse error names the file
if p.pivot:  # long rows (one per value) as one column per ``columns`` value, in their order
    order = list(dict.fromkeys(table[p.pivot["columns"]]))
    table = table.pivot_table(index=p.pivot["index"], columns=p.pivot["columns"], values=p.pivot["values"],
                              sort=False)[order].reset_index()
    table.columns.name = None
title, note = p.title, p.note
if i.get("md"):  # the Markdown's title and prose (not its table) say what the numbers are
    lines = Path(i.md).read_text().splitlines()
    title = next((line[2:] for line in lines if line.startswith("# ")), title)
    note = "\n".join(line for line in lines if line.strip() and not line.startswith(("#", "|")))
with atomic_output(snakemake.output.html) as tmp:
    tmp.write_text(to_html(table.round(3), title=title, note=note))
log.info("%s: %d rows", snakemake.output.html, len(table))
