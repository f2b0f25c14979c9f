# Paper tables: this run's numbers beside the paper's.


rule table1:
    input:
        linear=scores("linear"),
        nrf=scores("nrf"),
        paper=PAPER_TABLES,
    output:
        csv=report(
            "results/{dataset}/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md="results/{dataset}/tables/table1.md",
    log:
        "logs/table1/{dataset}.log",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        protocol=config["protocol"],
        dataset=DATASET,
    script:
        "../workflow_scripts/table1.py"
