# Neural Response Functions: the paper's tables and figures, end to end.
# Read top to bottom: config and validation, one include per stage, targets.
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/download.smk"
include: "rules/features.smk"
include: "rules/encoders.smk"
include: "rules/decoding.smk"
include: "rules/adaptation.smk"
include: "rules/volumes.smk"
include: "rules/encoders_extra.smk"
include: "rules/report.smk"
include: "rules/probes.smk"
include: "rules/ablations.smk"


# Named targets: inputs only, no wildcards, so each can be built alone
# (`snakemake table1`). The rules that make the files are in rules/.


rule all:
    default_target: True
    input:
        TABLES,
        FIGURES,


rule all_tables:
    input:
        TABLES,


rule all_figures:
    input:
        FIGURES,


rule table1:
    input:
        table_files("table1"),


rule fig3:
    input:
        figure3_outputs(),


rule table2:
    input:
        table_files("table2"),


rule table3:
    input:
        table_files("table3"),


rule table7:
    input:
        table_files("table7"),


rule table8:
    input:
        table_files("table8"),


rule table9:
    input:
        table_files("table9"),


rule fig2:
    input:
        FIG2,


rule table_universal:
    input:
        table_files("table_universal"),


rule fig_universal_transfer:
    input:
        figure_files("fig_universal_transfer"),


rule fig_universal_clusters:
    input:
        figure_files("fig_universal_clusters"),


rule table4:
    input:
        table_files("table4"),


rule table5:
    input:
        table_files("table5"),


rule table6:
    input:
        table_files("table6"),


rule fig4:
    input:
        figure_files("fig4"),
