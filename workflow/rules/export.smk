# Code export: the trained hash functions applied to the query and database items.


rule export_codes:
    input:
        model=f"{RUN}/model.pt",
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        codes=f"{RUN}/codes.h5",
        mat=f"{RUN}/codes.mat" if config["evaluation"]["export_mat"] else [],
    params:
        device=config["device"],
        code=export_code,
    threads: 1
    log:
        f"{LOG}/export.log",
    conda:
        "../../envs/torch.yaml"
    group:
        "run_{dataset}_{method}"
    resources:
        mem_mb=scaled(4000, per_input_mb=3.0),
        runtime=scaled(15, per_input_mb=0.1),
        gpu=gpu_jobs,
    script:
        "../../scripts/export_codes.py"
