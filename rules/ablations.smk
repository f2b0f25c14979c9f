# Ablations (nrf.experiments.ablations): Table 4 finetunes the base subject's NRF on the
# target with each finetune strategy; Tables 5 and 6 train one NRF per MLP
# depth or hidden width on a subject's full training set. A depth/width pair
# shared by both tables (the configured one) is trained once.


rule ablation_finetune_strategy:
    input:
        base=f"results/{DATASET}/models/nrf/{PROBE_BASE}.pt",
        prepared=get_probe_target,
        features=features_file(),
    output:
        "results/{dataset}/ablations/finetune_strategy.csv",
    log:
        "logs/ablation_finetune_strategy/{dataset}.log",
    benchmark:
        "benchmarks/runs/ablation_finetune_strategy/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        n_train=TABLE4_N,
        draws=config["adaptation"]["draws"],
        finetune_steps=config["adaptation"]["finetune_steps"],
        train_options=config["train"],
        protocol=config["protocol"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/ablation_finetune_strategy.py"


rule ablation_architecture:
    input:
        prepared=prepared(PROBE_SUBJECT),
        features=features_file(),
    output:
        checkpoint="results/{dataset}/ablations/models/nrf_depth{depth}_width{width}.pt",
        scores="results/{dataset}/ablations/scores/nrf_depth{depth}_width{width}.csv",
        training="results/{dataset}/ablations/scores/nrf_depth{depth}_width{width}_training.json",
    log:
        "logs/ablation_architecture/{dataset}_depth{depth}_width{width}.log",
    benchmark:
        "benchmarks/runs/ablation_architecture/{dataset}_depth{depth}_width{width}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        model_options=config["nrf"],
        train_options=config["train"],
        max_steps=config["ablations"].get("max_steps"),
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/ablation_architecture.py"


rule build_table4:
    input:
        rows="results/{dataset}/ablations/finetune_strategy.csv",
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table4.csv",
        md="results/{dataset}/tables/table4.md",
        html=report(
            "results/{dataset}/tables/table4.html",
            caption="../report/table4.rst",
            category="Tables",
        ),
    log:
        "logs/build_table4/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table4/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        base=PROBE_BASE,
        target=PROBE_TARGET,
        finetune_steps=config["adaptation"]["finetune_steps"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table4.py"


rule build_table5:
    input:
        scores=architecture_scores("depth"),
        trainings=architecture_scores("depth", "_training.json"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table5.csv",
        md="results/{dataset}/tables/table5.md",
        html=report(
            "results/{dataset}/tables/table5.html",
            caption="../report/table5.rst",
            category="Tables",
        ),
    log:
        "logs/build_table5/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table5/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        axis="depth",
        values=config["ablations"]["depths"],
        fixed={"width": config["nrf"]["width"]},
        subject=PROBE_SUBJECT,
        max_steps=ABLATION_MAX_STEPS,
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table_architecture.py"


rule build_table6:
    input:
        scores=architecture_scores("width"),
        trainings=architecture_scores("width", "_training.json"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table6.csv",
        md="results/{dataset}/tables/table6.md",
        html=report(
            "results/{dataset}/tables/table6.html",
            caption="../report/table6.rst",
            category="Tables",
        ),
    log:
        "logs/build_table6/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table6/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        axis="width",
        values=config["ablations"]["widths"],
        fixed={"depth": config["nrf"]["depth"]},
        subject=PROBE_SUBJECT,
        max_steps=ABLATION_MAX_STEPS,
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table_architecture.py"
