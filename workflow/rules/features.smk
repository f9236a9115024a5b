# Feature caching: a prepared dataset -> results/{dataset}/features/{encoder}.h5 (CLIP via
# transformers), resumable; and the generated image-caption demo (source demo_images).


# a dataset that ships features (rule import_features) gets them imported under its
# imported encoder's key; any other key is computed here
ruleorder: import_features > features


rule features:
    input:
        prepared=prepared_path,
    output:
        "results/{dataset}/features/{encoder}.h5",
    log:
        "logs/{dataset}/features/{encoder}.log",
    benchmark:
        "results/benchmarks/{dataset}/features/{encoder}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_prepared()),
        encoder=r"[A-Za-z0-9_.-]+",
    conda:
        "../../envs/torch.yaml"
    threads: features_threads
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(240),
        gpu=features_gpu,
        gpu_load=lambda w: 100 * features_gpu(w),
    params:
        settings=features_settings,
        encoder=features_encoder,
        code=code_fingerprint("xmhash.features.extract"),
    script:
        "../../scripts/features.py"


rule demo_images:
    output:
        directory("resources/{dataset}/prepared"),
    log:
        "logs/{dataset}/prepared.log",
    benchmark:
        "results/benchmarks/{dataset}/prepared.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("demo_images")),
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        spec=demo_images_spec,
        code=code_fingerprint("xmhash.data.demo_images"),
    script:
        "../../scripts/demo_images.py"
