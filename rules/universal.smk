# The Universal Brain Encoder beyond one subject: one encoder trained jointly
# on every subject (shared weights, one embedding per voxel), and transfer to
# a held-out subject, which learns only its voxel embeddings on N of its
# images with the adaptation cells' draws. The single-subject Universal
# encoder trains with the others in rules/encoders.smk.


ruleorder: evaluate_universal_joint > evaluate_encoder


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
        gpu=gpus(),
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
        gpu=gpus(),
    params:
        model_options=universal_options(config["universal"])[0],
        train_options=universal_options(config["universal"])[1],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/train_universal_joint.py"


rule evaluate_universal_joint:
    # as evaluate_encoder: predictions, voxel scores and retrieval in one job
    input:
        checkpoint="results/{dataset}/models/universal_joint/all.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        predictions="results/{dataset}/predictions/universal_joint/{subject}.hdf5",
        scores="results/{dataset}/scores/universal_joint/{subject}.csv",
        retrieval="results/{dataset}/retrieval/universal_joint/{subject}.csv",
    log:
        "logs/evaluate_universal_joint/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/evaluate_universal_joint/{dataset}_{subject}.tsv"
    # short, and decoding and Table 1 wait for it: run as soon as it can (greedy scheduling)
    priority: 3
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["predict"],
        runtime=60,
        gpu=gpus(),
    params:
        device=config["device"],
    script:
        "../workflow_scripts/evaluate_universal_joint.py"


rule transfer_universal:
    input:
        checkpoint="results/{dataset}/models/universal_heldout/{subject}.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        "results/{dataset}/transfer/universal/{subject}_n{n}_draw{draw}.csv",
    log:
        "logs/transfer_universal/{dataset}_{subject}_n{n}_draw{draw}.log",
    benchmark:
        "benchmarks/runs/transfer_universal/{dataset}_{subject}_n{n}_draw{draw}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=120,
        gpu=gpus(),
    params:
        train_options=get_transfer_options,
        transfer_options=universal_options(config["universal"])[2],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/transfer_universal.py"
