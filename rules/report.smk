# Every table and figure, one rule each, named build_<target> after the named
# target in the Snakefile that asks for it (targets() in rules/common.smk
# lists their files). Tables: this run beside the paper, as CSV, Markdown and
# an HTML page the report shows inline. Figures: PNG (in the report) and PDF.
# Paper order first (Tables 1-9, Figures 2-4), then what this pipeline adds.


rule paper_tables:
    # the paper's numbers, shipped with the workflow, copied into the run
    output:
        PAPER_TABLES,
    log:
        "logs/paper_tables/paper_tables.log",
    benchmark:
        "benchmarks/runs/paper_tables/paper_tables.tsv"
    params:
        sha256=PAPER_SHA256,
    run:
        shutil.copyfile(PAPER_SOURCE, output[0])
        Path(log[0]).write_text(f"copied {PAPER_SOURCE} (sha256 {params.sha256})\n")


rule build_table1:
    input:
        linear=scores("linear"),
        nrf=scores("nrf"),
        fwrf=scores("fwrf"),
        ridge=scores("ridge"),
        universal=scores("universal"),
        universal_joint=scores("universal_joint"),
        retrieval=[retrieval(m) for m in MODELS],
        voxels=voxel_tables(),
        paper=PAPER_TABLES,
        semantic_measured=decoding_metrics(MEASURED),
        semantic=[f for m in MODELS for f in decoding_metrics(m)],
    output:
        csv="results/{dataset}/tables/table1.csv",
        rois="results/{dataset}/tables/table1_rois.csv",
        md="results/{dataset}/tables/table1.md",
        html=report(
            "results/{dataset}/tables/table1.html",
            caption="../report/table1.rst",
            category="Tables",
        ),
    log:
        "logs/build_table1/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table1/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
        models=MODELS,
    script:
        "../workflow_scripts/table1.py"


rule table1_rois_html:
    # Table 1's per-ROI companion as a page the report shows
    input:
        csv="results/{dataset}/tables/table1_rois.csv",
    output:
        html=report(
            "results/{dataset}/tables/table1_rois.html",
            caption="../report/table1_rois.rst",
            category="Tables",
        ),
    log:
        "logs/table1_rois_html/{dataset}.log",
    benchmark:
        "benchmarks/runs/table1_rois_html/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        title="Table 1, per ROI: median voxel Pearson r",
        note="One row per subject and ROI (n_voxels: its voxels in nsdgeneral), one column per encoder.",
        pivot={
            "index": ["subject", "atlas", "roi", "n_voxels"],
            "columns": "method",
            "values": "median_r",
        },
    script:
        "../workflow_scripts/table_html.py"


# Tables 2, 7, 8, 9: one adaptation table per target subject (the
# ADAPTATION_TABLES of rules/common.smk), all written by one script.
rule build_table2:
    input:
        unpack(adaptation_table_inputs("table2")),
    output:
        csv="results/{dataset}/tables/table2.csv",
        md="results/{dataset}/tables/table2.md",
        html=report(
            "results/{dataset}/tables/table2.html",
            caption="../report/adaptation_table.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_table2/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table2/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table="table2",
        target=ADAPTATION_TABLES["table2"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/adaptation_table.py"


rule build_table3:
    input:
        cells=checked("table3", adaptation_cells("subj07", shots=[figure_shots()])),
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
        cells=checked("fig2a", [c for s in SUBJECTS for c in adaptation_cells(s)]),
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
        cells=checked(
            "fig2b", adaptation_cells("subj07", ext="hdf5", shots=[figure_shots()])
        ),
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


rule build_fig3:
    input:
        unpack(get_fig3_reconstructions),
        stimuli=tree(stimuli_key()),
    output:
        png=report(
            "results/{dataset}/figures/fig3.png",
            caption="../report/figure3.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig3.pdf",
    log:
        "logs/build_fig3/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig3/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sources=DECODE_SOURCES,
        rows=DECODER["figure_images"],
        subject=fig3_subject(),
        backend=DECODING,
    script:
        "../workflow_scripts/figure3.py"


rule build_table4:
    input:
        rows=checked("table4", f"results/{DATASET}/ablations/finetune_strategy.csv"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table4.csv",
        md="results/{dataset}/tables/table4.md",
        html=report(
            "results/{dataset}/tables/table4.html",
            caption="../report/table4.rst",
            category="Tables",
        ),
    log:
        "logs/build_table4/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table4/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        base=PROBE_BASE,
        target=PROBE_TARGET,
        finetune_steps=config["adaptation"]["finetune_steps"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table4.py"


rule build_fig4:
    input:
        shuffle=expand("results/{{dataset}}/probes/shuffle/n{n}.csv", n=SHOTS),
        transfer=checked(
            "fig4", expand(f"results/{DATASET}/probes/transfer/n{{n}}.csv", n=SHOTS)
        ),
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


rule build_table5:
    input:
        scores=architecture_files("depth"),
        trainings=architecture_files("depth", "_training.json"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table5.csv",
        md="results/{dataset}/tables/table5.md",
        html=report(
            "results/{dataset}/tables/table5.html",
            caption="../report/table5.rst",
            category="Tables",
        ),
    log:
        "logs/build_table5/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table5/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        axis="depth",
        values=config["ablations"]["depths"],
        seeds=ABLATION_SEEDS,
        fixed={"width": config["nrf"]["width"]},
        subject=PROBE_SUBJECT,
        max_steps=ABLATION_MAX_STEPS,
        min_steps=config["ablations"].get("min_steps"),
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table_architecture.py"


rule build_table6:
    input:
        scores=architecture_files("width"),
        trainings=architecture_files("width", "_training.json"),
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/table6.csv",
        md="results/{dataset}/tables/table6.md",
        html=report(
            "results/{dataset}/tables/table6.html",
            caption="../report/table6.rst",
            category="Tables",
        ),
    log:
        "logs/build_table6/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table6/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        axis="width",
        values=config["ablations"]["widths"],
        seeds=ABLATION_SEEDS,
        fixed={"depth": config["nrf"]["depth"]},
        subject=PROBE_SUBJECT,
        max_steps=ABLATION_MAX_STEPS,
        min_steps=config["ablations"].get("min_steps"),
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/table_architecture.py"


rule build_table7:
    input:
        unpack(adaptation_table_inputs("table7")),
    output:
        csv="results/{dataset}/tables/table7.csv",
        md="results/{dataset}/tables/table7.md",
        html=report(
            "results/{dataset}/tables/table7.html",
            caption="../report/adaptation_table.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_table7/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table7/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table="table7",
        target=ADAPTATION_TABLES["table7"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/adaptation_table.py"


rule build_table8:
    input:
        unpack(adaptation_table_inputs("table8")),
    output:
        csv="results/{dataset}/tables/table8.csv",
        md="results/{dataset}/tables/table8.md",
        html=report(
            "results/{dataset}/tables/table8.html",
            caption="../report/adaptation_table.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_table8/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table8/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table="table8",
        target=ADAPTATION_TABLES["table8"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/adaptation_table.py"


rule build_table9:
    input:
        unpack(adaptation_table_inputs("table9")),
    output:
        csv="results/{dataset}/tables/table9.csv",
        md="results/{dataset}/tables/table9.md",
        html=report(
            "results/{dataset}/tables/table9.html",
            caption="../report/adaptation_table.rst",
            category="Tables",
            subcategory="Adaptation",
        ),
    log:
        "logs/build_table9/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table9/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table="table9",
        target=ADAPTATION_TABLES["table9"],
        protocol=config["protocol"],
        dataset=DATASET,
        test_images=config["test_images"],
    script:
        "../workflow_scripts/adaptation_table.py"


# -- what this pipeline adds: the Universal Brain Encoder's comparisons, and
# an NRF queried anywhere (the resolution table, volumes, a contrast)


rule build_table_universal:
    input:
        single=scores("universal"),
        joint=scores("universal_joint"),
        nrf=scores("nrf"),
        single_retrieval=retrieval("universal"),
        joint_retrieval=retrieval("universal_joint"),
        nrf_retrieval=retrieval("nrf"),
        voxels=voxel_tables(),
    output:
        csv="results/{dataset}/tables/table_universal.csv",
        md="results/{dataset}/tables/table_universal.md",
        html=report(
            "results/{dataset}/tables/table_universal.html",
            caption="../report/table_universal.rst",
            category="Tables",
        ),
    log:
        "logs/build_table_universal/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table_universal/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=SUBJECTS,
        dataset=DATASET,
    script:
        "../workflow_scripts/table_universal.py"


rule build_fig_universal_transfer:
    input:
        # N in `shots` (outer), draw (inner), for both lists
        universal=checked("fig_universal_transfer", transfer_scores(universal_target())),
        cells=adaptation_cells(universal_target()),
    output:
        png=report(
            "results/{dataset}/figures/fig_universal_transfer.png",
            caption="../report/fig_universal_transfer.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_universal_transfer.pdf",
        csv="results/{dataset}/figures/fig_universal_transfer.csv",
    log:
        "logs/build_fig_universal_transfer/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig_universal_transfer/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        shots=SHOTS,
        draws=config["universal"]["transfer_draws"],
        cell_draws=ADAPTATION["draws"],
        target=universal_target(),
        dataset=DATASET,
    script:
        "../workflow_scripts/fig_universal_transfer.py"


rule build_fig_universal_clusters:
    input:
        checkpoint="results/{dataset}/models/universal_joint/all.pt",
        prepared=[prepared(s) for s in cluster_subjects()],
        voxels=voxel_tables(cluster_subjects()),
        stimuli=tree(stimuli_key()),
    output:
        png=report(
            "results/{dataset}/figures/fig_universal_clusters.png",
            caption="../report/fig_universal_clusters.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_universal_clusters.pdf",
        csv="results/{dataset}/figures/fig_universal_clusters.csv",
    log:
        "logs/build_fig_universal_clusters/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig_universal_clusters/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subjects=cluster_subjects(),
        k=config["universal"]["clusters"],
        n_top=4,
        seed=config["seed"],
        dataset=DATASET,
    script:
        "../workflow_scripts/fig_universal_clusters.py"


rule build_table_resolution:
    # NRF queried between the training voxels against the simulator's truth
    input:
        checkpoint=checked(
            "table_resolution", f"results/{DATASET}/models/nrf/{VOLUME_SUBJECT}.pt"
        ),
        linear=f"results/{DATASET}/predictions/linear/{VOLUME_SUBJECT}.hdf5",
        nrf=f"results/{DATASET}/predictions/nrf/{VOLUME_SUBJECT}.hdf5",
        prepared=prepared(VOLUME_SUBJECT),
        features=features_file(),
    output:
        csv="results/{dataset}/tables/table_resolution.csv",
        md="results/{dataset}/tables/table_resolution.md",
        truth=f"results/{{dataset}}/volumes/{VOLUME_SUBJECT}/heldout_truth.hdf5",
    log:
        "logs/build_table_resolution/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_table_resolution/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=gpus(),
    params:
        subject=VOLUME_SUBJECT,
        simulation=VOLUME_SIMULATION,
        subjects=SUBJECTS,
        seed=config["seed"],
        lattice_mm=VOLUME_CONFIG["resolution_lattice_mm"],
        max_points=VOLUME_CONFIG["resolution_max_points"],
        chunk_points=config["predict_chunk_voxels"],
        device=config["device"],
    script:
        "../workflow_scripts/table_resolution.py"


rule table_resolution_html:
    # the resolution table as a page the report shows (its Markdown's prose as the note)
    input:
        csv="results/{dataset}/tables/table_resolution.csv",
        md="results/{dataset}/tables/table_resolution.md",
    output:
        html=report(
            "results/{dataset}/tables/table_resolution.html",
            caption="../report/table_resolution.rst",
            category="Tables",
        ),
    log:
        "logs/table_resolution_html/{dataset}.log",
    benchmark:
        "benchmarks/runs/table_resolution_html/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        title="Resolution",
        note="",
        pivot=None,
    script:
        "../workflow_scripts/table_html.py"


rule build_fig_volume:
    input:
        coarse=f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/test_{FIGURE_GRIDS_MM[0]}mm.nii.gz",
        fine=f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/test_{FIGURE_GRIDS_MM[1]}mm.nii.gz",
        prepared=prepared(VOLUME_SUBJECT),
    output:
        png=report(
            "results/{dataset}/figures/fig_volume.png",
            caption="../report/fig_volume.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_volume.pdf",
    log:
        "logs/build_fig_volume/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_fig_volume/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        resolutions=VOLUME_CONFIG["figure_resolutions_mm"],
        n_images=VOLUME_CONFIG["test_images"],
        simulation=VOLUME_SIMULATION,
        subjects=SUBJECTS,
        seed=config["seed"],
    script:
        "../workflow_scripts/fig_volume.py"


rule build_fig_contrast:
    # faces minus places, NRF queried on an MNI grid: NIfTI maps and the figure
    input:
        checkpoint="results/{dataset}/models/nrf/{subject}.pt",
        images_a="results/{dataset}/volumes/images/face",
        images_b="results/{dataset}/volumes/images/place",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        t="results/{dataset}/volumes/{subject}/face_vs_place_t.nii.gz",
        difference="results/{dataset}/volumes/{subject}/face_vs_place_difference.nii.gz",
        png=report(
            "results/{dataset}/volumes/{subject}/face_vs_place.png",
            caption="../report/face_vs_place.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/volumes/{subject}/face_vs_place.pdf",
        summary="results/{dataset}/volumes/{subject}/face_vs_place.json",
    log:
        "logs/build_fig_contrast/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/build_fig_contrast/{dataset}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=gpus(),
    params:
        resolution=VOLUME_CONFIG["contrast_resolution_mm"],
        mask="training",
        labels=["faces", "places"],
        stimulus_size=STIMULUS_SIZE,
        chunk_points=config["predict_chunk_voxels"],
        device=config["device"],
        simulation=VOLUME_SIMULATION,
        subjects=SUBJECTS,
        seed=config["seed"],
    script:
        "../workflow_scripts/contrast.py"


rule build_continuous_space:
    # issue 23: NRF between the voxels against the simulator's truth, one
    # subject and subjects pooled, over fields with structure finer than the
    # voxels; it simulates, prepares and trains its own small datasets
    output:
        csv="results/{dataset}/tables/continuous_space.csv",
        md="results/{dataset}/tables/continuous_space.md",
        png=report(
            "results/{dataset}/figures/fig_continuous_space.png",
            caption="../report/fig_continuous_space.rst",
            category="Figures",
        ),
        pdf="results/{dataset}/figures/fig_continuous_space.pdf",
    log:
        "logs/build_continuous_space/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_continuous_space/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=gpus(),
    params:
        simulation=VOLUME_SIMULATION,
        subjects=SUBJECTS,
        target=VOLUME_SUBJECT,
        seeds=[config["seed"]],
        fine_scales=[None, 6.0, 3.0, 2.0],
        fine_amplitude=1.0,
        nrf_options=config["nrf"],
        train_options=dict(config["train"], max_steps=600, min_steps=0),
        linear_options=config["linear"],
        pooled_steps=1200,
        finetune_steps=300,
        features_options=config["features"],
        extractor=config["features"]["extractor"],
        val_fraction=config["val_fraction"],
        lattice_mm=VOLUME_CONFIG["resolution_lattice_mm"],
        max_points=2000,
        min_distance_mm=1.0,
        device=config["device"],
    script:
        "../workflow_scripts/continuous_space.py"


rule build_claims:
    # the paper's claims, one row each, decided by this run's tables (and a
    # claims run's, given claims.results); written last, from what exists
    input:
        tables=claims_inputs,
        paper=PAPER_TABLES,
    output:
        csv="results/{dataset}/tables/claims.csv",
        md="results/{dataset}/tables/claims.md",
        html=report(
            "results/{dataset}/tables/claims.html",
            caption="../report/claims.rst",
            category="Tables",
        ),
    log:
        "logs/build_claims/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_claims/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        results=f"results/{DATASET}",
        claims_results=config["claims"].get("results"),
        dataset=DATASET,
    script:
        "../workflow_scripts/claims_page.py"


rule build_settings:
    # on demand (target settings, not in all): every setting each experiment
    # uses, its source (command line, config file, config.yaml, preset or
    # schema) beside the paper's and the authors' value; offline, no job first
    input:
        embedded=EMBEDDED_CONFIG,
        configfiles=CONFIG_FILES,
        schema=Path(workflow.basedir) / "schemas" / "config.schema.yaml",
    output:
        md="results/{dataset}/settings.md",
        csv="results/{dataset}/settings.csv",
    log:
        "logs/build_settings/{dataset}.log",
    benchmark:
        "benchmarks/runs/build_settings/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        configfile_names=configfile_names(),
        command_line=COMMAND_LINE_CONFIG,
        # the job reads the config itself (snakemake.config); its digest here
        # rebuilds the table whenever any setting changes
        config_sha256=hashlib.sha256(
            json.dumps(config, sort_keys=True, default=str).encode()
        ).hexdigest(),
    script:
        "../workflow_scripts/settings.py"
