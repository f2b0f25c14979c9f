# The dataset tree (simulated here; downloaded in download.smk) and the
# per-subject preparation that reads only the NSD-layout tree.


rule simulate_dataset:
    output:
        simulated_outputs(),
        expdesign="resources/simulated/nsddata/experiments/nsd/nsd_expdesign.mat",
    log:
        "logs/simulate_dataset/simulated.log",
    benchmark:
        "benchmarks/runs/simulate_dataset/simulated.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        root=get_tree_root,
        subjects=SUBJECTS,
        simulation=config["simulation"],
        seed=config["seed"],
    script:
        "../workflow_scripts/simulate_dataset.py"


rule prepare_subject:
    input:
        unpack(get_prepare_inputs),
    output:
        "results/{dataset}/prepared/{subject}.hdf5",
    log:
        "logs/prepare_subject/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/prepare_subject/{dataset}_{subject}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=config["mem_mb"]["prepare"],
        runtime=120,
    params:
        root=get_tree_root,
        sessions=get_sessions,
        protocol=config["protocol"],
        val_fraction=config["val_fraction"],
        seed=config["seed"],
        betas_format=betas_format(),
        expected_voxels=get_expected_voxels,
        test_images=config["test_images"],
        test_sessions=test_sessions(config),
        expected_test_images=get_expected_test_images,
        min_train_images=max(config["shots"]),
    script:
        "../workflow_scripts/prepare_subject.py"


# Figure 4's regions are each ROI's label inside the whole brain mask, as the
# authors build them (nrf.data.roi_voxels): the ROI voxels outside nsdgeneral
# are prepared here, beside the prepared subject, in a file of their own, so
# that every other model and table keeps exactly the nsdgeneral voxels and
# never reruns when probes.rois changes. Only the probe's target needs it.
rule prepare_probe_rois:
    input:
        unpack(get_probe_rois_prepare_inputs),
    output:
        "results/{dataset}/prepared/{subject}.probe_rois.hdf5",
    log:
        "logs/prepare_probe_rois/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/prepare_probe_rois/{dataset}_{subject}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=config["mem_mb"]["prepare"],
        runtime=120,
    params:
        root=get_tree_root,
        sessions=get_sessions,
        protocol=config["protocol"],
        val_fraction=config["val_fraction"],
        seed=config["seed"],
        betas_format=betas_format(),
        test_images=config["test_images"],
        test_sessions=test_sessions(config),
        expected_test_images=get_expected_test_images,
        min_train_images=max(config["shots"]),
        probe_rois=config["probes"]["rois"],
    script:
        "../workflow_scripts/prepare_probe_rois.py"
