# The built-in demo dataset and the per-seed split files.


rule demo_features:
    output:
        "results/{dataset}/features/synthetic.h5",
    params:
        spec=demo_spec,
        code=code_fingerprint("xmhash.data.demo", "xmhash.features.store"),
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("demo")),
    log:
        "logs/{dataset}/features/synthetic.log",
    benchmark:
        "results/benchmarks/{dataset}/features/synthetic.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    script:
        "../../scripts/demo_features.py"


rule split:
    input:
        features=features_path,
    output:
        "results/{dataset}/splits/seed{seed}.npz",
    params:
        split=split_spec,
        code=code_fingerprint("xmhash.data.splits"),
    log:
        "logs/{dataset}/splits/seed{seed}.log",
    conda:
        "../../envs/core.yaml"
    group:
        "splits_{dataset}"
    resources:
        mem_mb=scaled(1000, per_input_mb=1.0),
        runtime=scaled(5),
    script:
        "../../scripts/split.py"
