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
    params:
        hp=method_params,
        settings=train_settings,
        code=train_code,
    threads: 1
    log:
        f"{LOG}/train.log",
    benchmark:
        f"{BENCH}/train.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/train.py"
