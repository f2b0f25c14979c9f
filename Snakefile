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
include: "rules/report.smk"
include: "rules/volumes.smk"


rule all:
    default_target: True
    input:
        "results/{dataset}/tables/table1.csv".format(dataset=config["dataset"]),


rule all_tables:
    input:
        "results/{dataset}/tables/table1.csv".format(dataset=config["dataset"]),
