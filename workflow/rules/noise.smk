# The noisy-label track: corrupt the training labels, then train, export and
# evaluate noise.methods on them. The train/export/evaluate rules are the clean track's
# rules with the run directory one level deeper (noise{noise}/) and, for training, the
# noisy labels as an extra input (`with: input:` replaces the whole input list, so it
# repeats the clean rule's, graphs included); see common.smk for the paths.


wildcard_constraints:
    noise=NOISE_TAG,


rule noise:
    input:
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        "results/{dataset}/noise/{noise}/seed{seed}.npz",
    log:
        "logs/{dataset}/noise/{noise}/seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/noise/{noise}/seed{seed}.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        kind=noise_kind,
        rate=noise_rate,
        code=code_fingerprint("xmhash.data.noise"),
    script:
        "../../scripts/noise.py"


use rule train as train_noisy with:
    input:
        unpack(graph_inputs),
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
        labels="results/{dataset}/noise/{noise}/seed{seed}.npz",
    output:
        model=f"{NRUN}/model.pt",
        summary=f"{NRUN}/train.json",
        history=f"{NRUN}/train_log.csv",
        weights=f"{NRUN}/sample_weights.npz",
    log:
        f"{NLOG}/train.log",
    benchmark:
        f"{NBENCH}/train.tsv"
    params:
        hp=noisy_method_params,
        settings=noisy_train_settings,
        code=train_code,


use rule export_codes as export_codes_noisy with:
    input:
        model=f"{NRUN}/model.pt",
        features=features_path,
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        codes=f"{NRUN}/codes.h5",
    log:
        f"{NLOG}/export.log",
    benchmark:
        f"{NBENCH}/export.tsv"


use rule evaluate as evaluate_noisy with:
    input:
        codes=f"{NRUN}/codes.h5",
        features=features_path,
        summary=f"{NRUN}/train.json",
    output:
        f"{NRUN}/metrics.json",
    log:
        f"{NLOG}/evaluate.log",
    benchmark:
        f"{NBENCH}/evaluate.tsv"


rule noise_weights_plot:
    input:
        lambda w: noisy_run_paths("sample_weights.npz", datasets=[w.dataset]),
    output:
        report(
            "results/summary/plots/{dataset}/noise_weights.png",
            caption="../report/noise_weights.rst",
            category="Plots",
            subcategory="{dataset}",
            labels={"plot": "noisy-label weights"},
        ),
    log:
        "logs/summary/plots/{dataset}/noise_weights.log",
    benchmark:
        "results/benchmarks/summary/plots/{dataset}/noise_weights.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        code=code_fingerprint("xmhash.report.noise"),
    script:
        "../../scripts/noise_weights_plot.py"


rule noise_table:
    input:
        "results/summary/metrics.tsv",
    output:
        report(
            "results/summary/noise_table.md",
            caption="../report/noise_table.rst",
            category="Tables",
            labels={"table": "noisy labels"},
        ),
    log:
        "logs/summary/noise_table.log",
    benchmark:
        "results/benchmarks/summary/noise_table.tsv"
    group:
        "summary"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        methods=report_methods(),
        code=code_fingerprint("xmhash.report.noise"),
    script:
        "../../scripts/noise_table.py"
