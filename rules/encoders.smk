# Encoding models per subject: train, predict the test images, score voxels.


rule train_encoder:
    input:
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=get_model_features,
    output:
        "results/{dataset}/models/{model}/{subject}.pt",
    log:
        "logs/train_encoder/{dataset}_{model}_{subject}.log",
    benchmark:
        "benchmarks/runs/train_encoder/{dataset}_{model}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        model_options=get_model_options,
        train_options=get_train_options,
        protocol=config["protocol"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/train_encoder.py"


rule predict_test:
    input:
        checkpoint="results/{dataset}/models/{model}/{subject}.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=get_model_features,
    output:
        "results/{dataset}/predictions/{model}/{subject}.hdf5",
    log:
        "logs/predict_test/{dataset}_{model}_{subject}.log",
    benchmark:
        "benchmarks/runs/predict_test/{dataset}_{model}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["predict"],
        runtime=60,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        chunk_voxels=config["predict_chunk_voxels"],
        device=config["device"],
    script:
        "../workflow_scripts/predict_test.py"


rule score_predictions:
    input:
        predictions="results/{dataset}/predictions/{model}/{subject}.hdf5",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
    output:
        "results/{dataset}/scores/{model}/{subject}.csv",
    log:
        "logs/score_predictions/{dataset}_{model}_{subject}.log",
    benchmark:
        "benchmarks/runs/score_predictions/{dataset}_{model}_{subject}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../workflow_scripts/score_predictions.py"
