# Neural Response Functions: the paper's tables and figures, end to end.
# Read top to bottom: config, one include per stage in pipeline order, then
# the named targets.
import os

from snakemake.utils import min_version

min_version("8.0")


# The embedded default, found beside this file whatever --directory is;
# --configfile and --config merge over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/download.smk"
include: "rules/features.smk"
include: "rules/encoders.smk"
include: "rules/universal.smk"
include: "rules/adaptation.smk"
include: "rules/probes.smk"
include: "rules/ablations.smk"
include: "rules/decoding.smk"
include: "rules/volumes.smk"
include: "rules/report.smk"


# Named targets: inputs only, no wildcards, so each can be built alone
# (`snakemake table1`); build_<target> in rules/report.smk writes its files.
# Each also asks for the checkpoints and volumes its jobs leave behind, so a
# run that lost one rebuilds it; one the config cannot build (table2 without
# subj07, ...) stops before any job and says why. targets() in
# rules/common.smk is the list.


rule all:
    default_target: True
    input:
        every_target("table", "figure", "page"),


rule all_tables:
    input:
        every_target("table"),


rule all_figures:
    input:
        every_target("figure"),


rule table1:
    input:
        target_input("table1"),


rule table2:
    input:
        target_input("table2"),


rule table3:
    input:
        target_input("table3"),


rule fig2a:
    input:
        target_input("fig2a"),


rule fig2b:
    input:
        target_input("fig2b"),


rule fig2:
    input:
        target_input("fig2a", "fig2b"),


rule fig3:
    input:
        target_input("fig3"),


rule table4:
    input:
        target_input("table4"),


rule fig4:
    input:
        target_input("fig4"),


rule table5:
    input:
        target_input("table5"),


rule table6:
    input:
        target_input("table6"),


rule table7:
    input:
        target_input("table7"),


rule table8:
    input:
        target_input("table8"),


rule table9:
    input:
        target_input("table9"),


rule table_universal:
    input:
        target_input("table_universal"),


rule fig_universal_transfer:
    input:
        target_input("fig_universal_transfer"),


rule fig_universal_clusters:
    input:
        target_input("fig_universal_clusters"),


rule table_resolution:
    input:
        target_input("table_resolution"),


rule fig_volume:
    input:
        target_input("fig_volume"),


rule fig_contrast:
    input:
        target_input("fig_contrast"),


rule continuous_space:
    input:
        target_input("continuous_space"),


rule claims_page:
    input:
        target_input("claims"),


rule settings:
    # on demand, not in all: every setting each experiment uses and its source,
    # beside the paper and the authors' code (results/{dataset}/settings.md)
    input:
        target_input("settings"),


rule claims:
    # the claims run (configs/claims.yaml): everything, the continuous-space
    # experiment, and the page that decides each claim
    input:
        every_target("table", "figure", "page"),
        target_input("continuous_space"),


rule all_decoding:
    # every source decoded and scored, and Figure 3 (no files without a decoder)
    input:
        all_decoding_metrics(),
        target_input("fig3") if DECODING != "none" else [],
