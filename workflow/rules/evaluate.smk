# Evaluation of each run, then the cross-run summary: tidy TSV, tables, plots.


# A run that stops on an error (with --keep-going: after every other job) still leaves a
# summary of the runs that finished, naming the others (xmhash.report.finished).
onerror:
    summarise_finished_runs()


rule evaluate:
    input:
        codes=f"{RUN}/codes.h5",
        features=features_path,
        summary=f"{RUN}/train.json",
    output:
        f"{RUN}/metrics.json",
    params:
        evaluation=evaluation_settings,
        code=code_fingerprint("xmhash.evaluate"),
    log:
        f"{LOG}/evaluate.log",
    benchmark:
        f"{BENCH}/evaluate.tsv"
    conda:
        "../../envs/core.yaml"
    group:
        "run_{dataset}_{method}"
    resources:
        mem_mb=scaled(4000, per_input_mb=1.0),
        runtime=scaled(15, per_input_mb=0.1),
    script:
        "../../scripts/evaluate.py"


rule aggregate:
    input:
        run_paths("metrics.json"),
        noisy_run_paths("metrics.json"),
    output:
        metrics=report(
            "results/summary/metrics.tsv",
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "all metrics (TSV)"},
        ),
        curves="results/summary/curves.tsv",
    params:
        code=code_fingerprint("xmhash.report.aggregate"),
    log:
        "logs/summary/aggregate.log",
    benchmark:
        "results/benchmarks/summary/aggregate.tsv"
    conda:
        "../../envs/core.yaml"
    group:
        "summary"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    script:
        "../../scripts/aggregate.py"


rule tables:
    input:
        metrics="results/summary/metrics.tsv",
        published=published_input,
    output:
        markdown=report(
            "results/summary/tables.md",
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "comparison (Markdown)"},
        ),
        latex="results/summary/tables.tex",
        html=report(
            "results/summary/tables.html",
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "comparison"},
        ),
    params:
        metrics=config["report"]["table_metrics"],
        methods=report_methods(),
        published_as=config["report"]["published_as"],
        code=code_fingerprint("xmhash.report.tables"),
    log:
        "logs/summary/tables.log",
    benchmark:
        "results/benchmarks/summary/tables.tsv"
    conda:
        "../../envs/core.yaml"
    group:
        "summary"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    script:
        "../../scripts/tables.py"


rule plots:
    input:
        metrics="results/summary/metrics.tsv",
        curves="results/summary/curves.tsv",
    output:
        map_vs_bits=report(
            "results/summary/plots/{dataset}/map_vs_bits.png",
            caption="../report/map_vs_bits.rst",
            category="Plots",
            subcategory="{dataset}",
            labels={"plot": "mAP vs bits"},
        ),
        pr=report(
            "results/summary/plots/{dataset}/pr.png",
            caption="../report/pr.rst",
            category="Plots",
            subcategory="{dataset}",
            labels={"plot": "precision-recall"},
        ),
        pn=report(
            "results/summary/plots/{dataset}/pn.png",
            caption="../report/pn.rst",
            category="Plots",
            subcategory="{dataset}",
            labels={"plot": "precision@N"},
        ),
    params:
        methods=METHODS,
        code=code_fingerprint("xmhash.report.plots"),
    log:
        "logs/summary/plots/{dataset}.log",
    benchmark:
        "results/benchmarks/summary/plots/{dataset}.tsv"
    conda:
        "../../envs/core.yaml"
    group:
        "summary"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    script:
        "../../scripts/plots.py"
