# Query a trained NRF anywhere (issue 11): volumes of a subject's test images
# on MNI grids at any resolution. Settings: config["volumes"]; subject and
# grids: the volume helpers in rules/common.smk. The figure, the in-silico
# contrast and the resolution table built from them (fig_volume, fig_contrast,
# table_resolution) are in rules/report.smk.


rule query_images:
    input:
        stimuli=tree(stimuli_key()),
        prepared=prepared(VOLUME_SUBJECT),
    output:
        directory("results/{dataset}/volumes/images/{imageset}"),
    log:
        "logs/query_images/{dataset}_{imageset}.log",
    benchmark:
        "benchmarks/runs/query_images/{dataset}_{imageset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        n_test=VOLUME_CONFIG["test_images"],
        n_category=VOLUME_CONFIG["contrast_images"],
        simulation=VOLUME_SIMULATION,
        subjects=SUBJECTS,
        seed=config["seed"],
    script:
        "../workflow_scripts/query_images.py"


rule volumes:
    input:
        checkpoint="results/{dataset}/models/nrf/{subject}.pt",
        images="results/{dataset}/volumes/images/{imageset}",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        nifti="results/{dataset}/volumes/{subject}/{imageset}_{resolution}mm.nii.gz",
        sidecar="results/{dataset}/volumes/{subject}/{imageset}_{resolution}mm.nii.gz.json",
    log:
        "logs/volumes/{dataset}_{subject}_{imageset}_{resolution}.log",
    benchmark:
        "benchmarks/runs/volumes/{dataset}_{subject}_{imageset}_{resolution}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=gpus(),
    params:
        mask="training",
        stimulus_size=STIMULUS_SIZE,
        chunk_points=config["predict_chunk_voxels"],
        device=config["device"],
    script:
        "../workflow_scripts/query_volume.py"
