# The built-in demo dataset and the per-seed split files.


rule demo_features:
    output:
        "results/{dataset}/features/synthetic.h5",
    log:
        "logs/{dataset}/features/synthetic.log",
    benchmark:
        "results/benchmarks/{dataset}/features/synthetic.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("demo")),
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        spec=demo_spec,
        code=code_fingerprint("xmhash.data.demo", "xmhash.features.store"),
    script:
        "../../scripts/demo_features.py"


rule split:
    input:
        features=features_path,
    output:
        "results/{dataset}/splits/seed{seed}.npz",
    log:
        "logs/{dataset}/splits/seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/splits/seed{seed}.tsv"
    group:
        "splits_{dataset}"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(1000, per_input_mb=1.0),
        runtime=scaled(5),
    params:
        split=split_spec,
        code=code_fingerprint("xmhash.data.splits"),
    script:
        "../../scripts/split.py"


# ---------------------------------------------------------------- real datasets
# Compute nodes usually have no internet: the download runs on the submit host. Where
# files come from (mirrors, local_dir, official_urls) is not a param: changing it must
# not redo a verified download or the preparation after it.


localrules:
    download,


rule download:
    output:
        "resources/{dataset}/downloads/manifest.json",
    log:
        "logs/{dataset}/download.log",
    benchmark:
        "results/benchmarks/{dataset}/download.tsv"
    wildcard_constraints:
        dataset=alternatives(real_datasets()),
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(500),
        runtime=scaled(600),
    params:
        source=dataset_source_name,
    script:
        "../../scripts/download.py"


rule prepare:
    input:
        unpack(dataset_inputs),
    output:
        directory("resources/{dataset}/prepared"),
    log:
        "logs/{dataset}/prepare.log",
    benchmark:
        "results/benchmarks/{dataset}/prepare.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_prepare()),
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(240),
    params:
        source=dataset_source_name,
        options=dataset_options,
        code=dataset_code,
    script:
        "../../scripts/prepare.py"


rule import_features:
    input:
        unpack(dataset_inputs),
    output:
        "results/{dataset}/features/{encoder}.h5",
    log:
        "logs/{dataset}/features/{encoder}.log",
    benchmark:
        "results/benchmarks/{dataset}/features/{encoder}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_import()),
        encoder=alternatives(imported_encoders()),
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    params:
        source=dataset_source_name,
        options=dataset_options,
        code=dataset_code,
    script:
        "../../scripts/import_features.py"
