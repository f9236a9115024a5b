# Evaluation of each run, then the cross-run summary: tidy TSV, tables, plots.


rule evaluate:
    input:
        codes=f"{RUN}/codes.h5",
        features=features_path,
        summary=f"{RUN}/train.json",
    output:
        f"{RUN}/metrics.json",
    params:
        evaluation=config["evaluation"],
        database=lambda wc: dataset_cfg(wc.dataset).get("database")
        or config["evaluation"]["database"],
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
        ),
        curves="results/summary/curves.tsv",
    params:
        code=code_fingerprint("xmhash.report.aggregate"),
    log:
        "logs/summary/aggregate.log",
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
            "results/summary/tables.md", caption="../report/tables.rst", category="Tables"
        ),
        latex="results/summary/tables.tex",
        html=report(
            "results/summary/tables.html", caption="../report/tables.rst", category="Tables"
        ),
    params:
        metrics=config["report"]["table_metrics"],
        methods=report_methods(),
        published_as=config["report"]["published_as"],
        code=code_fingerprint("xmhash.report.tables"),
    log:
        "logs/summary/tables.log",
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
        ),
        pr=report(
            "results/summary/plots/{dataset}/pr.png",
            caption="../report/pr.rst",
            category="Plots",
            subcategory="{dataset}",
        ),
        pn=report(
            "results/summary/plots/{dataset}/pn.png",
            caption="../report/pn.rst",
            category="Plots",
            subcategory="{dataset}",
        ),
    params:
        methods=METHODS,
        code=code_fingerprint("xmhash.report.plots"),
    log:
        "logs/summary/plots/{dataset}.log",
    conda:
        "../../envs/core.yaml"
    group:
        "summary"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    script:
        "../../scripts/plots.py"
