# The frozen image block, computed once per image and cached. The cache
# depends on the images the subjects saw (from the experiment design), not on
# their prepared responses: re-preparing a subject re-extracts nothing.


rule extract_features:
    input:
        stimuli=tree(stimuli_key()),
        expdesign=tree(nsd_layout.EXPDESIGN),
    output:
        "results/{dataset}/features/{extractor}.hdf5",
    log:
        "logs/extract_features/{dataset}_{extractor}.log",
    benchmark:
        "benchmarks/runs/extract_features/{dataset}_{extractor}.tsv"
    conda:
        "../envs/torch.yaml"
    # one thread for the CPU filter bank (10-18 s): a 2-thread job waits for
    # both cores, and in the claims run it waited 5 min behind the 1-thread
    # continuous-space job while every rule downstream waited for it
    threads: 1 if EXTRACTOR == "filterbank" else 2
    resources:
        mem_mb=config["mem_mb"]["features"],
        runtime=240,
        gpu=gpus(always=EXTRACTOR == "clip_vitb16"),
    params:
        extractor=get_extractor_name,
        options=config["features"],
        device=config["device"],
        sessions=session_counts(),
        trials_per_session=trials_per_session(),
    script:
        "../workflow_scripts/extract_features.py"
