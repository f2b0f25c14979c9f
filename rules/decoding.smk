# Semantic level: measured and predicted test responses are decoded to images
# and scored against the images seen. The config key "decoding" picks the
# backend (offline, mindeye2) or none. Every source is decoded per subject:
# "measured" (the Measured fMRI reference row) and each model's predictions;
# the adaptation cells' predictions are decoded too (Tables 2, 3, 7-9).
# Figure 3 is drawn by build_fig3 (rules/report.smk).


rule train_decoder:
    input:
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
        stimuli=tree(stimuli_key()),
    output:
        "results/{dataset}/decoding/offline/decoders/{subject}.hdf5",
    log:
        "logs/train_decoder/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/train_decoder/{dataset}_{subject}.tsv"
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        mem_mb=16000 if DATASET == "nsd" else 2000,
        runtime=60,
    params:
        image_size=DECODER["image_size"],
        alphas=DECODER["alphas"],
        cv=DECODER["cv"],
    script:
        "../workflow_scripts/train_decoder.py"


rule decode_offline:
    # One job per subject decodes and scores every source (measured and each
    # model's predictions): one start-up of torch instead of two per source.
    input:
        unpack(get_offline_subject_inputs),
        stimuli=tree(stimuli_key()),
        features=features_file(),
    output:
        recon=expand(
            "results/{{dataset}}/decoding/offline/{source}/{{subject}}.hdf5",
            source=DECODE_SOURCES,
        ),
        metrics=expand(
            "results/{{dataset}}/decoding/offline/metrics/{source}/{{subject}}.csv",
            source=DECODE_SOURCES,
        ),
    log:
        "logs/decode_offline/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/decode_offline/{dataset}_{subject}.tsv"
    # long, and at the end of the DAG: start it as soon as its inputs exist
    priority: 2
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        sources=DECODE_SOURCES,
        feature_space=EXTRACTOR,
        device=config["device"],
        download_weights=DECODER["download_weights"],
    script:
        "../workflow_scripts/decode_offline.py"


rule mindeye2_inputs:
    input:
        unpack(get_decode_inputs),
    output:
        "results/{dataset}/decoding/mindeye2/inputs/{source}/{subject}.hdf5",
    log:
        "logs/mindeye2_inputs/{dataset}_{source}_{subject}.log",
    benchmark:
        "benchmarks/runs/mindeye2_inputs/{dataset}_{source}_{subject}.tsv"
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=10,
    params:
        source="{source}",
        checkpoint_dir=DECODER["mindeye2"]["checkpoint_dir"],
        scaling=DECODER["mindeye2"]["scaling"],
    script:
        "../workflow_scripts/mindeye2_inputs.py"


rule decode_mindeye2:
    input:
        inputs="results/{dataset}/decoding/mindeye2/inputs/{source}/{subject}.hdf5",
    output:
        "results/{dataset}/decoding/mindeye2/{source}/{subject}.hdf5",
    log:
        "logs/decode_mindeye2/{dataset}_{source}_{subject}.log",
    benchmark:
        "benchmarks/runs/decode_mindeye2/{dataset}_{source}_{subject}.tsv"
    conda:
        "../envs/mindeye2.yaml"
    threads: 4
    resources:
        mem_mb=64000,
        runtime=240,
        gpu=gpus(always=True),
    params:
        checkpoint_dir=DECODER["mindeye2"]["checkpoint_dir"],
        device=config["device"],
        seed=config["seed"],
    script:
        "../workflow_scripts/decode_mindeye2.py"


rule score_decoding:
    # MindEye2's reconstructions (the offline backend scores in decode_offline)
    input:
        recon="results/{dataset}/decoding/{backend}/{source}/{subject}.hdf5",
        stimuli=tree(stimuli_key()),
        features=features_file(),
    output:
        "results/{dataset}/decoding/{backend}/metrics/{source}/{subject}.csv",
    log:
        "logs/score_decoding/{dataset}_{backend}_{source}_{subject}.log",
    benchmark:
        "benchmarks/runs/score_decoding/{dataset}_{backend}_{source}_{subject}.tsv"
    wildcard_constraints:
        backend="mindeye2",
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        mem_mb=16000 if DATASET == "nsd" else 2000,
        runtime=60,
        gpu=gpus(),
    params:
        device=config["device"],
        download_weights=DECODER["download_weights"],
    script:
        "../workflow_scripts/score_decoding.py"


rule score_adaptation_decoding:
    input:
        decoder="results/{dataset}/decoding/offline/decoders/{subject}.hdf5",
        cells=get_adaptation_cell_files,
        stimuli=tree(stimuli_key()),
        features=features_file(),
    output:
        "results/{dataset}/decoding/offline/adaptation/{subject}.csv",
    log:
        "logs/score_adaptation_decoding/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/score_adaptation_decoding/{dataset}_{subject}.tsv"
    # long, and at the end of the DAG: start it as soon as its inputs exist
    priority: 2
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        # simulated: 1.7-2.2 GB peaks measured (benchmarks/default_run.md)
        mem_mb=16000 if DATASET == "nsd" else 3000,
        runtime=60,
        gpu=gpus(),
    params:
        device=config["device"],
        download_weights=DECODER["download_weights"],
        # Table 3 (subj07 at its N) shows every method's semantic columns
        every_method_at=lambda wildcards: (
            figure_shots() if wildcards.subject == "subj07" else None
        ),
    script:
        "../workflow_scripts/score_adaptation_decoding.py"
