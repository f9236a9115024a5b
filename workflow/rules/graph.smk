# Similarity graphs and Leiden communities: one job per dataset x encoder x graph kind x
# split seed, on that seed's training rows. Methods that declare `graphs = (...)` get the
# files as named train inputs (graph_inputs in common.smk).


rule graph:
    input:
        features="results/{dataset}/features/{encoder}.h5",
        split="results/{dataset}/splits/seed{seed}.npz",
    output:
        graph=f"{GRAPH}.h5",
        stats=f"{GRAPH}.json",
    log:
        f"{GRAPH_LOG}.log",
    benchmark:
        f"{GRAPH_BENCH}.tsv"
    wildcard_constraints:
        kind=alternatives(GRAPH_KINDS),
    conda:
        "../../envs/graph.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000, per_input_mb=2.0),
        runtime=scaled(60),
        gpu=gpu_jobs,
        gpu_load=gpu_whole,
    params:
        spec=graph_spec,
        settings=graph_settings,
        code=code_fingerprint("xmhash.graph.stage"),
    script:
        "../../scripts/graph.py"


rule graph_plot:
    input:
        f"{GRAPH}.json",
    output:
        report(
            f"{GRAPH}_sizes.png",
            caption="../report/graph.rst",
            category="Graphs",
            subcategory="{dataset}",
            labels={"graph": "{kind} ({encoder})", "seed": "{seed}"},
        ),
    log:
        f"{GRAPH_LOG}_plot.log",
    benchmark:
        f"{GRAPH_BENCH}_plot.tsv"
    wildcard_constraints:
        kind=alternatives(GRAPH_KINDS),
    conda:
        "../../envs/core.yaml"
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        code=code_fingerprint("xmhash.graph.plot"),
    script:
        "../../scripts/graph_plot.py"
