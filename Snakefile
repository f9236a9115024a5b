# xmhash: cross-modal hashing from raw data to the comparison table.
#
# Path grammar (every parameter that changes a file is in its path or its rule's params):
#   resources/{dataset}/...                                   downloads, prepared datasets
#   results/{dataset}/features/{encoder}.h5                   cached features (demo: synthetic.h5)
#   results/{dataset}/splits/seed{seed}.npz                   query/database/train/val indices
#   results/{dataset}/{method}/{bits}bits/seed{seed}/         model.pt, train.json, train_log.csv,
#                                                             codes.h5, metrics.json
#   results/summary/                                          metrics.tsv, curves.tsv, tables.*, plots/
#   results/benchmarks/...                                    Snakemake per-job benchmark files
#   logs/...                                                  one log per job, mirroring results/

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=alternatives(config["datasets"]),
    method=alternatives(config["methods"]),
    bits=r"\d+",
    seed=r"\d+",


include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/graph.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/noise.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_targets(),
