# Real NSD: exactly the files the configured subjects and sessions need,
# fetched from NSD's bucket into resources/nsd/ in NSD's own layout. Every
# file is written under a temporary name, checked against the server and
# renamed; an interrupted download resumes. `--resources nsd_downloads=N`
# bounds how many run at once.


rule download_nsd_file:
    output:
        "resources/nsd/{key}",
    log:
        "logs/download_nsd_file/{key}.log",
    benchmark:
        "benchmarks/runs/download_nsd_file/{key}.tsv"
    wildcard_constraints:
        key=r"nsddata/.+\.(mat|csv|nii\.gz)|nsddata_betas/ppdata/subj0\d/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr\.nii\.gz",
    conda:
        "../envs/download.yaml"
    resources:
        mem_mb=1000,
        runtime=60,
        nsd_downloads=1,
    params:
        base_url=config["nsd"]["base_url"],
        root=get_download_root,
    script:
        "../workflow_scripts/download_nsd_file.py"


rule download_session_betas:
    input:
        brainmask="resources/nsd/nsddata/ppdata/{subject}/func1pt8mm/brainmask.nii.gz",
        nsdgeneral="resources/nsd/nsddata/ppdata/{subject}/func1pt8mm/roi/nsdgeneral.nii.gz",
    output:
        "resources/nsd/nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{session}.nsdgeneral.hdf5",
    log:
        "logs/download_session_betas/{subject}_{session}.log",
    benchmark:
        "benchmarks/runs/download_session_betas/{subject}_{session}.tsv"
    wildcard_constraints:
        session=r"\d\d",
    conda:
        "../envs/download.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
        nsd_downloads=1,
    params:
        base_url=config["nsd"]["base_url"],
        source=config["nsd"]["betas_source"],
        block_size=config["nsd"]["range_block_kib"] * 1024,
        cache_bytes=config["nsd"]["range_cache_mib"] * 1024 * 1024,
        root=get_download_root,
    script:
        "../workflow_scripts/download_session_betas.py"


# The probe target's ROI voxels outside nsdgeneral (Figure 4's regions are
# whole-brain, as the authors'), one compact file a session beside the
# nsdgeneral one, which every model reads and which stays as it is.
rule download_probe_roi_betas:
    input:
        unpack(probe_roi_volumes),
    output:
        "resources/nsd/nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{session}.probe_rois.hdf5",
    log:
        "logs/download_probe_roi_betas/{subject}_{session}.log",
    benchmark:
        "benchmarks/runs/download_probe_roi_betas/{subject}_{session}.tsv"
    wildcard_constraints:
        session=r"\d\d",
    conda:
        "../envs/download.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
        nsd_downloads=1,
    params:
        base_url=config["nsd"]["base_url"],
        source=config["nsd"]["betas_source"],
        block_size=config["nsd"]["range_block_kib"] * 1024,
        cache_bytes=config["nsd"]["range_cache_mib"] * 1024 * 1024,
        root=get_download_root,
        probe_rois=config["probes"]["rois"],
    script:
        "../workflow_scripts/download_probe_roi_betas.py"


rule download_stimuli_subset:
    input:
        expdesign="resources/nsd/nsddata/experiments/nsd/nsd_expdesign.mat",
        stim_info="resources/nsd/nsddata/experiments/nsd/nsd_stim_info_merged.csv",
    output:
        "resources/nsd/nsddata_stimuli/stimuli/nsd/nsd_stimuli.subset.hdf5",
    log:
        "logs/download_stimuli_subset/nsd.log",
    benchmark:
        "benchmarks/runs/download_stimuli_subset/nsd.tsv"
    conda:
        "../envs/download.yaml"
    resources:
        mem_mb=2000,
        runtime=600,
        nsd_downloads=1,
    params:
        base_url=config["nsd"]["base_url"],
        sessions=session_counts(),
        trials_per_session=config["nsd"]["trials_per_session"],
        root=get_download_root,
    script:
        "../workflow_scripts/download_stimuli_subset.py"
