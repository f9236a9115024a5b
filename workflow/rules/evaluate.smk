# Evaluation of each run, then the cross-run summary: tidy TSV, tables, plots, and the
# report's runtime, graph and training-curve pages.


# A run that stops on an error (with --keep-going: after every other job) still leaves a
# summary of the runs that finished, all of it (tables, plots, runtime, graphs), naming
# the others (xmhash.report.finished).
onerror:
    summarise_finished_runs(job_benchmarks())


rule evaluate:
    input:
        codes=f"{RUN}/codes.h5",
        features=features_path,
        summary=f"{RUN}/train.json",
    output:
        f"{RUN}/metrics.json",
    log:
        f"{LOG}/evaluate.log",
    benchmark:
        f"{BENCH}/evaluate.tsv"
    group:
        "run_{dataset}_{method}"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(4000, per_input_mb=1.0),
        runtime=scaled(15, per_input_mb=0.1),
    params:
        evaluation=evaluation_settings,
        database=evaluation_database,
        code=code_fingerprint("xmhash.evaluate"),
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
        warnings="results/summary/warnings.tsv",
    log:
        "logs/summary/aggregate.log",
    benchmark:
        "results/benchmarks/summary/aggregate.tsv"
    group:
        "summary"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        code=code_fingerprint("xmhash.report.aggregate"),
    script:
        "../../scripts/aggregate.py"


rule tables:
    input:
        metrics="results/summary/metrics.tsv",
        warnings="results/summary/warnings.tsv",
        published=published_input,
        graph_stats=graph_stats_files(),
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
        graphs_markdown="results/summary/graphs.md",
        graphs_html=report(
            "results/summary/graphs.html",
            caption="../report/graph_stats.rst",
            category="Graphs",
        ),
    log:
        "logs/summary/tables.log",
    benchmark:
        "results/benchmarks/summary/tables.tsv"
    group:
        "summary"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        metrics=config["report"]["table_metrics"],
        methods=report_methods(),
        published_as=config["report"]["published_as"],
        code=code_fingerprint("xmhash.report.tables", "xmhash.report.runs"),
    script:
        "../../scripts/tables.py"


rule runtime:
    input:
        **{rule: files for rule, files in job_benchmarks().items() if files},
    output:
        markdown="results/summary/runtime.md",
        html=report(
            "results/summary/runtime.html",
            caption="../report/runtime.rst",
            category="Runtime",
        ),
    log:
        "logs/summary/runtime.log",
    benchmark:
        "results/benchmarks/summary/runtime.tsv"
    group:
        "summary"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        code=code_fingerprint("xmhash.report.runs"),
    script:
        "../../scripts/runtime.py"


rule plots:
    input:
        metrics="results/summary/metrics.tsv",
        curves="results/summary/curves.tsv",
        history=lambda w: run_paths("train_log.csv", [w.dataset]),
        example_codes=example_codes,
        features=features_path,
        prepared=example_images,
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
        retrieval=report(
            "results/summary/plots/{dataset}/retrieval.png",
            caption="../report/retrieval.rst",
            category="Plots",
            subcategory="{dataset}",
            labels={"plot": "retrieval examples"},
        ),
        training=report(
            "results/summary/plots/{dataset}/training.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{dataset}",
        ),
        map_vs_bits_pdf="results/summary/plots/{dataset}/map_vs_bits.pdf",
        # inline in the report's landing page (an image there would not be embedded)
        map_vs_bits_svg="results/summary/plots/{dataset}/map_vs_bits.svg",
        pr_pdf="results/summary/plots/{dataset}/pr.pdf",
        pn_pdf="results/summary/plots/{dataset}/pn.pdf",
        training_pdf="results/summary/plots/{dataset}/training.pdf",
        retrieval_pdf="results/summary/plots/{dataset}/retrieval.pdf",
    log:
        "logs/summary/plots/{dataset}.log",
    benchmark:
        "results/benchmarks/summary/plots/{dataset}.tsv"
    group:
        "summary"
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        methods=METHODS,
        database=evaluation_database,
        tie_seed=config["evaluation"]["tie_seed"],
        code=code_fingerprint("xmhash.report.plots", "xmhash.report.examples"),
    script:
        "../../scripts/plots.py"
