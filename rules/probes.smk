# Figure 4's perturbation probes (nrf.perturbations): NRF scratch with shuffled
# coordinates (4a) and ROI-only finetuning with aligned or shifted
# coordinates (4b, 4c); 4b/c's regions are whole-brain (the prepared subject
# and its probe_rois file, rule prepare_probe_rois). One job per (probe, N) trains every condition and
# draw of that N, so torch is imported once for several small trainings.
# Subjects, sizes and draws (probes.draws, else adaptation.draws): the probe
# helpers in rules/common.smk; Figure 4 itself is drawn by build_fig4
# (rules/report.smk). With probes.shuffle_nrf the shuffle probe trains its own
# NRF sizes and also writes n{n}_fit.csv, the training-set fit of each of its
# models beside the linear baseline's (read by the claims page).


rule probe_shuffle:
    input:
        unpack(get_shuffle_intact_cells),
        prepared=prepared(PROBE_SUBJECT),
        features=features_file(),
    output:
        "results/{dataset}/probes/shuffle/n{n}.csv",
        **shuffle_fit_output(),
    log:
        "logs/probe_shuffle/{dataset}_n{n}.log",
    benchmark:
        "benchmarks/runs/probe_shuffle/{dataset}_n{n}.tsv"
    # with a model of its own (probes.shuffle_nrf) the N = 800 job trains all three arms of every draw, the
    # claims run's longest job (~33 min): start it as soon as its inputs exist, not behind the ablations
    priority: 1
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=gpus(),
    params:
        draws=PROBE_DRAWS,
        scratch_steps=SHUFFLE_MAX_STEPS,
        min_steps=SHUFFLE_MIN_STEPS,
        train_options=config["train"],
        model_options=shuffle_model_options(),
        linear_options=config["linear"],
        atlases=config["probes"]["shuffle_atlases"],
        protocol=config["protocol"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/probe_shuffle.py"


rule probe_transfer:
    input:
        base=f"results/{DATASET}/models/nrf/{PROBE_BASE}.pt",
        prepared=get_probe_target,
        probe_rois=get_probe_target_rois,
        features=features_file(),
    output:
        "results/{dataset}/probes/transfer/n{n}.csv",
    log:
        "logs/probe_transfer/{dataset}_n{n}.log",
    benchmark:
        "benchmarks/runs/probe_transfer/{dataset}_n{n}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=gpus(),
    params:
        draws=PROBE_DRAWS,
        finetune_steps=config["adaptation"]["finetune_steps"],
        train_options=config["train"],
        rois=config["probes"]["rois"],
        shift_mm=config["probes"]["shift_mm"],
        shift_direction=config["probes"]["shift_direction"],
        shift_seed=config["seed"] + config["probes"]["seed_offset"],
        protocol=config["protocol"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow_scripts/probe_transfer.py"
