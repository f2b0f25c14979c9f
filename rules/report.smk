# Paper tables: this run's numbers beside the paper's, as CSV, Markdown and
# an HTML page that the report shows inline. The named targets (table1, ...)
# are in the Snakefile.


rule build_table1:
    input:
        linear=scores("linear"),
        nrf=scores("nrf"),
        fwrf=scores("fwrf"),
        ridge=scores("ridge"),
        universal=scores("universal"),
        universal_joint=scores("universal_joint"),
        retrieval=[retrieval(m) for m in MODELS],
        voxels=voxel_tables(),
        paper=PAPER_TABLES,
        semantic_measured=decoding_metrics(MEASURED),
        semantic=[f for m in MODELS for f in decoding_metrics(m)],
    output:
        csv="results/{dataset}/tables/table1.csv",
        rois=report(
            "results/{dataset}/tables/table1_rois.csv",
            caption="../report/table1_rois.rst",
            category="Tables",
        ),
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
        models=MODELS,
    script:
        "../workflow_scripts/table1.py"
