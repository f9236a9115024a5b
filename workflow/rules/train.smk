# Hash training: one job per dataset x method x bits x seed.


rule train:
    input:
        unpack(graph_inputs),
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        model=f"{RUN}/model.pt",
        summary=f"{RUN}/train.json",
        history=f"{RUN}/train_log.csv",
    log:
        f"{LOG}/train.log",
    benchmark:
        f"{BENCH}/train.tsv"
    group:
        "run_{dataset}_{method}"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000, per_input_mb=3.0),
        runtime=scaled(60, per_input_mb=0.5),
        gpu=gpu_jobs,
        gpu_load=gpu_share,
    params:
        hp=method_params,
        settings=train_settings,
        code=train_code,
    script:
        "../../scripts/train.py"
