# Cross-subject adaptation (paper 5.2): for every target subject, shot count
# and draw, finetune the other subjects' NRFs on the target's images and
# combine them, beside NRF scratch and the linear baseline on the same draw.
# One job per cell trains all of the cell's small models (one torch start-up).
# Tables 2, 3, 7-9 and Figures 2a/2b read the cells (rules/report.smk); their
# decoded images are scored in rules/decoding.smk.


rule adapt_cell:
    input:
        unpack(get_adaptation_bases),
        prepared="results/{dataset}/prepared/{subject}.hdf5",
        features=features_file(),
    output:
        hdf5="results/{dataset}/adaptation/{subject}/n{n}_draw{draw}.hdf5",
        csv="results/{dataset}/adaptation/{subject}/n{n}_draw{draw}.csv",
    log:
        "logs/adapt_cell/{dataset}_{subject}_n{n}_draw{draw}.log",
    benchmark:
        "benchmarks/runs/adapt_cell/{dataset}_{subject}_n{n}_draw{draw}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=config["mem_mb"]["train"],
        runtime=240,
        gpu=gpus(),
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
