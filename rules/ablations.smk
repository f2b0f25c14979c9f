# Ablations (nrf.experiments.ablations): Table 4 finetunes the base subject's NRF on the
# target with each finetune strategy; Tables 5 and 6 train one NRF per MLP
# depth or hidden width on a subject's full training set. A depth/width pair
# shared by both tables (the configured one) is trained once (once per seed
# with ablations.seeds: {seedtag} is "_seed{s}", else empty and the files keep
# their names). The tables are built by build_table4, build_table5 and
# build_table6 (rules/report.smk).


rule ablation_finetune_strategy:
    input:
        unpack(get_table4_both_cells),
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
        gpu=gpus(),
    params:
        n_train=TABLE4_N,
        base=PROBE_BASE,
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
        checkpoint="results/{dataset}/ablations/models/nrf_depth{depth}_width{width}{seedtag}.pt",
        scores="results/{dataset}/ablations/scores/nrf_depth{depth}_width{width}{seedtag}.csv",
        training="results/{dataset}/ablations/scores/nrf_depth{depth}_width{width}{seedtag}_training.json",
    log:
        "logs/ablation_architecture/{dataset}_depth{depth}_width{width}{seedtag}.log",
    benchmark:
        "benchmarks/runs/ablation_architecture/{dataset}_depth{depth}_width{width}{seedtag}.tsv"
    wildcard_constraints:
        seedtag=r"(_seed\d+)?",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=gpus(),
    params:
        model_options=config["nrf"],
        train_options=config["train"],
        max_steps=config["ablations"].get("max_steps"),
        min_steps=config["ablations"].get("min_steps"),
        seed=lambda w: int(w.seedtag[len("_seed") :]) if w.seedtag else config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/ablation_architecture.py"
