# Paper tables: this run's numbers beside the paper's, as CSV, Markdown and
# an HTML page that the report shows inline. The named targets (table1, ...)
# are in the Snakefile.


rule build_table1:
    input:
        linear=scores("linear"),
        nrf=scores("nrf"),
        paper=PAPER_TABLES,
        semantic_measured=decoding_metrics(MEASURED),
        semantic_linear=decoding_metrics("linear"),
        semantic_nrf=decoding_metrics("nrf"),
    output:
        csv="results/{dataset}/tables/table1.csv",
        md="results/{dataset}/tables/table1.md",
        html=report(
            "results/{dataset}/tables/table1.html",
            caption="../report/table1.rst",
            category="Tables",
        ),
    log:
        "logs/build_table1/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table1/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table1.py"
