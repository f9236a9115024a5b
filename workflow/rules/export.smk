# Code export: the trained hash functions applied to the query and database items.


rule export_codes:
    input:
        model=f"{RUN}/model.pt",
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        codes=f"{RUN}/codes.h5",
    log:
        f"{LOG}/export.log",
    benchmark:
        f"{BENCH}/export.tsv"
    group:
        "run_{dataset}_{method}"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000, per_input_mb=3.0),
        runtime=scaled(15, per_input_mb=0.1),
        gpu=gpu_jobs,
        gpu_load=gpu_share,
    params:
        code=export_code,
    script:
        "../../scripts/export_codes.py"


# evaluation.export_mat adds these files to the targets (common.smk: mat_targets); a rule
# of its own, so that switching it on or off reruns neither the export nor the metrics
rule codes_mat:
    input:
        "{run}/codes.h5",
    output:
        "{run}/codes.mat",
    log:
        "logs/codes_mat/{run}.log",
    benchmark:
        "results/benchmarks/codes_mat/{run}.tsv"
    wildcard_constraints:
        run=r"results/.+",
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000, per_input_mb=4.0, on="codes"),
        runtime=scaled(10),
    params:
        code=code_fingerprint("xmhash.codes"),
    script:
        "../../scripts/codes_mat.py"
