# The frozen image block, computed once per image and cached.


rule extract_features:
    input:
        stimuli=tree(stimuli_key()),
        prepared=[prepared(s) for s in SUBJECTS],
    output:
        "results/{dataset}/features/{extractor}.hdf5",
    log:
        "logs/extract_features/{dataset}_{extractor}.log",
    benchmark:
        "benchmarks/runs/extract_features/{dataset}_{extractor}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=1 if EXTRACTOR == "clip_vitb16" else 0,
    params:
        extractor=EXTRACTOR,
        options=config["features"],
        device=config["device"],
    script:
        "../workflow_scripts/extract_features.py"
