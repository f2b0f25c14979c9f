"""The claims page: one row per claim of the paper, decided by this run's table CSVs
(and by a second run's, e.g. one made with configs/claims.yaml, when its folder is given)."""

from nrf.runlog import start

log = start(snakemake)
from pathlib import Path  # noqa: E402

from nrf.reporting.claims import write_claims  # noqa: E402

p, o = snakemake.params, snakemake.output
claims_results = p.get("claims_results") or None
if claims_results is not None and not Path(claims_results).is_dir():
    log.warning("claims run folder %s does not exist: its column says 'not run'", claims_results)
# the page reads only what this config builds: the rule's inputs, relative to the results folder
run_files = [str(Path(f).relative_to(p.results)) for f in snakemake.input.tables]
rows = write_claims(paper_csv=snakemake.input.paper, run_results=p.results, claims_results=claims_results,
                    run_files=run_files, out_csv=o.csv, out_md=o.md, out_html=o.html, dataset=p.dataset)
log.info("%d claims: %s", len(rows), dict(zip(rows["claim"], rows["run_verdict"])))
