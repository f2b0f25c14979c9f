# Query a trained NRF anywhere (issue 11): volumes on MNI grids at any
# resolution, an in-silico contrast, and the resolution claim tested against
# the simulator's ground truth. Settings: config["volumes"].
VOLUME_SUBJECT = SUBJECTS[0]
VOLUME_CONFIG = config["volumes"]
# fig_volume's grids, named as the resolution wildcard spells them (1.0 -> "1")
FIGURE_GRIDS_MM = [f"{mm:g}" for mm in VOLUME_CONFIG["figure_resolutions_mm"]]


# The simulator's parameters rebuild its ground truth (None on real NSD); the
# training stimuli's side is NSD's 425 px or the simulator's image size.
VOLUME_SIMULATION = config["simulation"] if DATASET == "simulated" else None
STIMULUS_SIZE = config["simulation"]["image_size"] if DATASET == "simulated" else 425
# What the volume rules add to a run (simulated only: they need its truth).
VOLUME_TARGETS = (
    [
        f"results/{DATASET}/tables/table_resolution.csv",
        f"results/{DATASET}/figures/fig_volume.png",
        f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/face_vs_place.png",
    ]
    if DATASET == "simulated"
    else []
)

TABLES += [t for t in VOLUME_TARGETS if "/tables/" in t]
FIGURES += [f for f in VOLUME_TARGETS if "/tables/" not in f]


wildcard_constraints:
    imageset="test|face|body|place|object",
    resolution="[0-9]+(\.[0-9]+)?",


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
        gpu=1 if DATASET == "nsd" else 0,
    params:
        mask="training",
        stimulus_size=STIMULUS_SIZE,
        chunk_points=config["predict_chunk_voxels"],
        device=config["device"],
    script:
        "../workflow_scripts/query_volume.py"


rule contrast:
    input:
        checkpoint="results/{dataset}/models/nrf/{subject}.pt",
        images_a="results/{dataset}/volumes/images/face",
        images_b="results/{dataset}/volumes/images/place",
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        t="results/{dataset}/volumes/{subject}/face_vs_place_t.nii.gz",
        difference="results/{dataset}/volumes/{subject}/face_vs_place_difference.nii.gz",
        figure=report(
            "results/{dataset}/volumes/{subject}/face_vs_place.png",
            caption="../report/face_vs_place.rst",
            category="Figures",
        ),
        summary="results/{dataset}/volumes/{subject}/face_vs_place.json",
    log:
        "logs/contrast/{dataset}_{subject}.log",
    benchmark:
        "benchmarks/runs/contrast/{dataset}_{subject}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1 if DATASET == "nsd" else 0,
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


rule table_resolution:
    input:
        checkpoint=f"results/{DATASET}/models/nrf/{VOLUME_SUBJECT}.pt",
        linear=f"results/{DATASET}/predictions/linear/{VOLUME_SUBJECT}.hdf5",
        nrf=f"results/{DATASET}/predictions/nrf/{VOLUME_SUBJECT}.hdf5",
        prepared=prepared(VOLUME_SUBJECT),
        features=features_file(),
    output:
        csv=report(
            f"results/{DATASET}/tables/table_resolution.csv",
            caption="../report/table_resolution.rst",
            category="Tables",
        ),
        md=f"results/{DATASET}/tables/table_resolution.md",
        truth=f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/heldout_truth.hdf5",
    log:
        f"logs/table_resolution/{DATASET}.log",
    benchmark:
        f"benchmarks/runs/table_resolution/{DATASET}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1 if DATASET == "nsd" else 0,
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


rule fig_volume:
    input:
        coarse=f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/test_{FIGURE_GRIDS_MM[0]}mm.nii.gz",
        fine=f"results/{DATASET}/volumes/{VOLUME_SUBJECT}/test_{FIGURE_GRIDS_MM[1]}mm.nii.gz",
        prepared=prepared(VOLUME_SUBJECT),
    output:
        report(
            f"results/{DATASET}/figures/fig_volume.png",
            caption="../report/fig_volume.rst",
            category="Figures",
        ),
    log:
        f"logs/fig_volume/{DATASET}.log",
    benchmark:
        f"benchmarks/runs/fig_volume/{DATASET}.tsv"
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
