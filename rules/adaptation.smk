# Cross-subject adaptation (paper 5.2): for every target subject, shot count
# and draw, finetune the other subjects' NRFs on the target's images and
# combine them, beside NRF scratch and the linear baseline on the same draw.
# One job per cell trains all of the cell's small models (one torch start-up).


rule adapt_cell:
    input:
        unpack(get_adaptation_bases),
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        hdf5="results/{dataset}/adaptation/{subject}/n{shots}_draw{draw}.hdf5",
        csv="results/{dataset}/adaptation/{subject}/n{shots}_draw{draw}.csv",
    log:
        "logs/adapt_cell/{dataset}_{subject}_n{shots}_draw{draw}.log",
    benchmark:
        "benchmarks/runs/adapt_cell/{dataset}_{subject}_n{shots}_draw{draw}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=240,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        bases=get_adaptation_base_names,
        protocol=config["protocol"],
        seed=config["seed"],
        train_options=config["train"],
        model_options=config["nrf"],
        linear_options=config["linear"],
        finetune_steps=ADAPTATION["finetune_steps"],
        scratch_steps=ADAPTATION["scratch_steps"],
        device=config["device"],
    script:
        "../workflow_scripts/adapt_cell.py"


rule build_adaptation_table:
    input:
        unpack(get_adaptation_table_inputs),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/{table}.csv",
        md="results/{dataset}/tables/{table}.md",
        html=report(
            "results/{dataset}/tables/{table}.html",
            caption="../report/adaptation_table.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_adaptation_table/{dataset}_{table}.log",
    benchmark:
        "benchmarks/runs/build_adaptation_table/{dataset}_{table}.tsv"
    wildcard_constraints:
        table="table2|table7|table8|table9",
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        target=get_adaptation_target,
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/adaptation_table.py"


rule build_table3:
    input:
        cells=adaptation_cells("subj07", shots=[figure_shots()]),
        semantic=adaptation_semantic("subj07"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table3.csv",
        md="results/{dataset}/tables/table3.md",
        html=report(
            "results/{dataset}/tables/table3.html",
            caption="../report/table3.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_table3/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table3/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table3.py"


rule build_fig2a:
    input:
        cells=[c for s in SUBJECTS for c in adaptation_cells(s)],
        nrf_full=scores("nrf"),
        linear_full=scores("linear"),
    output:
        png=report(
            "results/{dataset}/figures/fig2a.png",
            caption="../report/fig2a.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig2a.pdf",
        csv="results/{dataset}/figures/fig2a.csv",
    log:
        "logs/build_fig2a/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig2a/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        dataset=DATASET,
        protocol=config["protocol"],
        n_full=full_training_images(),
    script:
        "../workflow_scripts/fig2a.py"


rule build_fig2b:
    input:
        cells=adaptation_cells("subj07", ext="hdf5", shots=[figure_shots()]),
        prepared="results/{dataset}/prepared/subj07.hdf5",
    output:
        png=report(
            "results/{dataset}/figures/fig2b.png",
            caption="../report/fig2b.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig2b.pdf",
    log:
        "logs/build_fig2b/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig2b/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        dataset=DATASET,
        protocol=config["protocol"],
        n_train=figure_shots(),
    script:
        "../workflow_scripts/fig2b.py"


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
    conda:
        "../envs/decoding.yaml"
    threads: 1
    resources:
        # simulated: 1.7-2.2 GB peaks measured (benchmarks/default_run.md)
        mem_mb=16000 if DATASET == "nsd" else 3000,
        runtime=60,
        gpu=1 if DATASET == "nsd" else 0,
    params:
        device=config["device"],
        download_weights=DECODER["download_weights"],
        # Table 3 (subj07 at its N) shows every method's semantic columns
        every_method_at=lambda wildcards: (
            figure_shots() if wildcards.subject == "subj07" else None
        ),
    script:
        "../workflow_scripts/score_adaptation_decoding.py"
