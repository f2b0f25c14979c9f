# Encoding models per subject (linear, NRF, fWRF, ridge, single-subject
# Universal): train, then predict the test images, score each voxel and image
# retrieval (one job); and the per-voxel table (noise ceiling, ROI labels) Table 1 reads.
# The joint Universal encoder's checkpoint and predictions: rules/universal.smk.


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
    # the adaptation cells, probes and volumes wait for the NRFs: train them first
    priority: 2
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=gpus(),
    params:
        model_options=get_model_options,
        train_options=get_train_options,
        protocol=config["protocol"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/train_encoder.py"


rule evaluate_encoder:
    # Prediction, voxel scores and retrieval of one (model, subject) in one
    # job: one torch start-up instead of three processes (issue 22); the three
    # files stay separate outputs.
    input:
        checkpoint="results/{dataset}/models/{model}/{subject}.pt",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=get_model_features,
    output:
        predictions="results/{dataset}/predictions/{model}/{subject}.hdf5",
        scores="results/{dataset}/scores/{model}/{subject}.csv",
        retrieval="results/{dataset}/retrieval/{model}/{subject}.csv",
    log:
        "logs/evaluate_encoder/{dataset}_{model}_{subject}.log",
    benchmark:
        "benchmarks/runs/evaluate_encoder/{dataset}_{model}_{subject}.tsv"
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
        chunk_voxels=config["predict_chunk_voxels"],
        device=config["device"],
    script:
        "../workflow_scripts/evaluate_encoder.py"


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
