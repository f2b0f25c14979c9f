# Figure 4's perturbation probes (nrf.perturbations): NRF scratch with shuffled
# coordinates (4a) and ROI-only finetuning with aligned or shifted
# coordinates (4b, 4c). One job per (probe, N) trains every condition and
# draw of that N, so torch is imported once for several small trainings.
# Subjects and sizes: the probe helpers in rules/common.smk.


wildcard_constraints:
    n="|".join(str(n) for n in SHOTS),
    depth=r"\d+",
    width=r"\d+",


rule probe_shuffle:
    input:
        prepared=prepared(PROBE_SUBJECT),
        features=features_file(),
    output:
        "results/{dataset}/probes/shuffle/n{n}.csv",
    log:
        "logs/probe_shuffle/{dataset}_n{n}.log",
    benchmark:
        "benchmarks/runs/probe_shuffle/{dataset}_n{n}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=720,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        draws=config["adaptation"]["draws"],
        scratch_steps=config["adaptation"]["scratch_steps"],
        train_options=config["train"],
        model_options=config["nrf"],
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
        gpu=1 if DATASET == "nsd" else 0,
    params:
        draws=config["adaptation"]["draws"],
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


rule build_fig4:
    input:
        shuffle=expand("results/{{dataset}}/probes/shuffle/n{n}.csv", n=SHOTS),
        transfer=expand("results/{{dataset}}/probes/transfer/n{n}.csv", n=SHOTS),
    output:
        png=report(
            "results/{dataset}/figures/fig4.png",
            caption="../report/fig4.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig4.pdf",
        csv="results/{dataset}/figures/fig4.csv",
    log:
        "logs/build_fig4/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig4/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=DATASET,
        protocol=config["protocol"],
    script:
        "../workflow_scripts/fig4.py"
