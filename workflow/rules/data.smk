# The built-in demo dataset and the per-seed split files.


rule demo_features:
    output:
        "results/{dataset}/features/synthetic.h5",
    params:
        spec=demo_spec,
        code=code_fingerprint(
            "xmhash.data.demo", "xmhash.data.demo_variants", "xmhash.features.store"
        ),
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
    benchmark:
        "results/benchmarks/{dataset}/splits/seed{seed}.tsv"
    conda:
        "../../envs/core.yaml"
    group:
        "splits_{dataset}"
    resources:
        mem_mb=scaled(1000, per_input_mb=1.0),
        runtime=scaled(5),
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
    params:
        source=dataset_source_name,
    wildcard_constraints:
        dataset=alternatives(real_datasets()),
    log:
        "logs/{dataset}/download.log",
    benchmark:
        "results/benchmarks/{dataset}/download.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(500),
        runtime=scaled(600),
    script:
        "../../scripts/download.py"


rule prepare:
    input:
        unpack(dataset_inputs),
    output:
        directory("resources/{dataset}/prepared"),
    params:
        source=dataset_source_name,
        options=dataset_options,
        code=dataset_code,
    wildcard_constraints:
        dataset=alternatives(datasets_with_prepare()),
    log:
        "logs/{dataset}/prepare.log",
    benchmark:
        "results/benchmarks/{dataset}/prepare.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(240),
    script:
        "../../scripts/prepare.py"


rule import_features:
    input:
        unpack(dataset_inputs),
    output:
        "results/{dataset}/features/{encoder}.h5",
    params:
        source=dataset_source_name,
        options=dataset_options,
        code=dataset_code,
    wildcard_constraints:
        dataset=alternatives(datasets_with_import()),
        encoder=alternatives(imported_encoders()),
    log:
        "logs/{dataset}/features/{encoder}.log",
    benchmark:
        "results/benchmarks/{dataset}/features/{encoder}.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    script:
        "../../scripts/import_features.py"
