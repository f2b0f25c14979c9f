# Issue 9: the joint Universal encoder, transfer to a held-out subject, the
# per-voxel table (noise ceiling, ROIs), retrieval, and the Universal table
# and figures. The per-subject encoders (fwrf, ridge, universal) go through
# rules/encoders.smk like linear and nrf.


ruleorder: predict_universal_joint > predict_test


rule voxel_table:
    input:
        unpack(get_voxel_table_inputs),
    output:
        "results/{dataset}/voxels/{subject}.csv",
    log:
        "logs/voxel_table/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/voxel_table/{dataset}_{subject}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        repeats=3,
    script:
        "../workflow_scripts/voxel_table.py"


rule score_retrieval:
    input:
        predictions="results/{dataset}/predictions/{model}/{subject}.hdf5",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
    output:
        "results/{dataset}/retrieval/{model}/{subject}.csv",
    log:
        "logs/score_retrieval/{dataset}_{model}_{subject}.log",
    benchmark:
        "benchmarks/runs/score_retrieval/{dataset}_{model}_{subject}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../workflow_scripts/score_retrieval.py"


rule train_universal_joint:
    input:
        prepared=[prepared(s) for s in SUBJECTS],
        features=features_file(),
    output:
        "results/{dataset}/models/universal_joint/all.pt",
    log:
        "logs/train_universal_joint/{dataset}.log",
    benchmark:
        "benchmarks/runs/train_universal_joint/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        model_options=universal_options(config["universal"])[0],
        train_options=universal_options(config["universal"])[1],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/train_universal_joint.py"


rule train_universal_heldout:
    input:
        prepared=get_heldout_prepared,
        features=features_file(),
    output:
        "results/{dataset}/models/universal_heldout/{subject}.pt",
    log:
        "logs/train_universal_heldout/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/train_universal_heldout/{dataset}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        model_options=universal_options(config["universal"])[0],
        train_options=universal_options(config["universal"])[1],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/train_universal_joint.py"


rule predict_universal_joint:
    input:
        checkpoint="results/{dataset}/models/universal_joint/all.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        "results/{dataset}/predictions/universal_joint/{subject}.hdf5",
    log:
        "logs/predict_universal_joint/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/predict_universal_joint/{dataset}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["predict"],
        runtime=60,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        device=config["device"],
    script:
        "../workflow_scripts/predict_universal_joint.py"


rule transfer_universal:
    input:
        checkpoint="results/{dataset}/models/universal_heldout/{subject}.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        "results/{dataset}/subset_scores/universal_transfer/{subject}_n{n}_d{draw}.csv",
    log:
        "logs/transfer_universal/{dataset}_{subject}_n{n}_d{draw}.log",
    benchmark:
        "benchmarks/runs/transfer_universal/{dataset}_{subject}_n{n}_d{draw}.tsv"
    wildcard_constraints:
        n=r"\d+",
        draw=r"\d+",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=120,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        train_options=get_transfer_options,
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/transfer_universal.py"


rule nrf_scratch_subset:
    input:
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        "results/{dataset}/subset_scores/nrf_scratch/{subject}_n{n}_d{draw}.csv",
    log:
        "logs/nrf_scratch_subset/{dataset}_{subject}_n{n}_d{draw}.log",
    benchmark:
        "benchmarks/runs/nrf_scratch_subset/{dataset}_{subject}_n{n}_d{draw}.tsv"
    wildcard_constraints:
        n=r"\d+",
        draw=r"\d+",
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
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/nrf_scratch_subset.py"


rule build_table_universal:
    input:
        single=scores("universal"),
        joint=scores("universal_joint"),
        nrf=scores("nrf"),
        single_retrieval=retrieval("universal"),
        joint_retrieval=retrieval("universal_joint"),
        nrf_retrieval=retrieval("nrf"),
        voxels=voxel_tables(),
    output:
        csv="results/{dataset}/tables/table_universal.csv",
        md="results/{dataset}/tables/table_universal.md",
        html=report(
            "results/{dataset}/tables/table_universal.html",
            caption="../report/table_universal.rst",
            category="Tables",
        ),
    log:
        "logs/build_table_universal/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table_universal/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        dataset=DATASET,
    script:
        "../workflow_scripts/table_universal.py"


rule build_fig_universal_transfer:
    input:
        universal=transfer_scores_files("universal_transfer"),
        nrf_scratch=transfer_scores_files("nrf_scratch"),
    output:
        png=report(
            "results/{dataset}/figures/fig_universal_transfer.png",
            caption="../report/fig_universal_transfer.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_universal_transfer.pdf",
        csv="results/{dataset}/figures/fig_universal_transfer.csv",
    log:
        "logs/build_fig_universal_transfer/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig_universal_transfer/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        shots=config["shots"],
        draws=config["universal"]["transfer_draws"],
        target=universal_target(),
        dataset=DATASET,
        # The adaptation work's NRF finetune-ensemble curve (columns n_train,
        # draw, median_r), drawn when the file exists; not a tracked input.
        finetune_csv=f"results/{DATASET}/adaptation/finetune_ensemble_{universal_target()}.csv",
    script:
        "../workflow_scripts/fig_universal_transfer.py"


rule build_fig_universal_clusters:
    input:
        checkpoint="results/{dataset}/models/universal_joint/all.pt",
        prepared=[prepared(s) for s in cluster_subjects()],
        voxels=[f"results/{DATASET}/voxels/{s}.csv" for s in cluster_subjects()],
        stimuli=tree(stimuli_key()),
    output:
        png=report(
            "results/{dataset}/figures/fig_universal_clusters.png",
            caption="../report/fig_universal_clusters.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_universal_clusters.pdf",
        csv="results/{dataset}/figures/fig_universal_clusters.csv",
    log:
        "logs/build_fig_universal_clusters/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig_universal_clusters/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subjects=cluster_subjects(),
        k=config["universal"]["clusters"],
        n_top=4,
        seed=config["seed"],
        dataset=DATASET,
    script:
        "../workflow_scripts/fig_universal_clusters.py"
