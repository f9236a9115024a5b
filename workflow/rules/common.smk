# Helpers shared by the .smk files: config checks, path and parameter functions,
# target lists, code fingerprints. Only functions and constants here.

import ast
import hashlib
import math
import os
from functools import lru_cache
from pathlib import Path

from snakemake.exceptions import WorkflowError

SRC = Path(workflow.basedir).joinpath("src")


# ---------------------------------------------------------------- config checks


def _check_keys(listed, defined, what):
    missing = [k for k in listed if k not in defined]
    if missing:
        raise WorkflowError(
            f"config.yaml: run.{what} lists {missing}, which have no block under "
            f"`{what}:` (defined: {sorted(defined)})"
        )


_check_keys(config["run"]["datasets"], config["datasets"], "datasets")
_check_keys(config["run"]["methods"], config.get("methods", {}), "methods")

DATASETS = config["run"]["datasets"]
METHODS = config["run"]["methods"]
BITS = config["run"]["bits"]
SEEDS = config["run"]["seeds"]


def alternatives(names):
    """A regex matching exactly one of ``names`` (or nothing)."""
    return "|".join(sorted(names, key=len, reverse=True)) or "(?!x)x"


# ---------------------------------------------------------------- paths


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def datasets_with_source(source):
    return [d for d, c in config["datasets"].items() if c["source"] == source]


def encoder_key(dataset):
    """The short encoder key in the feature file's path."""
    cfg = dataset_cfg(dataset)
    if cfg["source"] == "demo":
        return "synthetic"
    return cfg.get("encoder") or imported_encoder(dataset)  # datasets (issue 3)


def features_path(wildcards):
    return f"results/{wildcards.dataset}/features/{encoder_key(wildcards.dataset)}.h5"


RUN = "results/{dataset}/{method}/{bits}bits/seed{seed}"
LOG = "logs/{dataset}/{method}/{bits}bits/seed{seed}"
BENCH = "results/benchmarks/{dataset}/{method}/{bits}bits/seed{seed}"


def run_paths(filename, datasets=None):
    return expand(
        f"{RUN}/{filename}",
        dataset=datasets or DATASETS,
        method=METHODS,
        bits=BITS,
        seed=SEEDS,
    )


def published_input(wildcards):
    """The published-numbers file, when the report shows ours beside it."""
    return [config["report"]["published"]] if config["report"]["published_as"] else []


def final_targets():
    return [
        "results/summary/metrics.tsv",
        "results/summary/tables.md",
        *expand(
            "results/summary/plots/{dataset}/{plot}.png",
            dataset=DATASETS,
            plot=["map_vs_bits", "pr", "pn"],
        ),
    ]


# ---------------------------------------------------------------- params


def demo_spec(wildcards):
    return dataset_cfg(wildcards.dataset).get("demo", {})


def split_spec(wildcards):
    return dataset_cfg(wildcards.dataset)["split"]


def method_params(wildcards):
    return config["methods"].get(wildcards.method) or {}


def train_settings(wildcards):
    return {"device": config["device"], **config["training"]}


# ---------------------------------------------------------------- code fingerprints
# Snakemake reruns a job when its own script changes, not when a package module it
# imports changes. code_fingerprint() hashes the source of the given xmhash modules and
# of every xmhash module they import (transitively); rules put it in their params, so a
# change to, say, methods/djsrh.py reruns exactly the djsrh jobs. Imports made by a
# package's __init__.py (the method registry) are not followed: a registry line does not
# make every method depend on every other. `exclude` drops modules a job imports but does
# not run (training runs xmhash.metrics only for `select: val`), so that a fix to the
# metrics reruns the evaluations, not the trainings.


def _module_file(name):
    base = SRC.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imported(name, path):
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "xmhash"}


@lru_cache(maxsize=None)
def code_fingerprint(*modules, exclude=()):
    missing = [m for m in modules if _module_file(m) is None]
    if missing:
        raise WorkflowError(f"code_fingerprint: no source for {missing} under {SRC}")
    seen, todo = {}, list(modules)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen or name in exclude:
            continue
        seen[name] = path
        if path.name != "__init__.py":
            todo.extend(_imported(name, path))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode())
        digest.update(seen[name].read_bytes())
    return digest.hexdigest()[:16]


def train_code(wildcards):
    unused = () if config["training"]["select"] == "val" else ("xmhash.metrics",)
    return code_fingerprint(
        "xmhash.train", f"xmhash.methods.{wildcards.method}", exclude=unused
    )


def export_code(wildcards):
    return code_fingerprint("xmhash.export", f"xmhash.methods.{wildcards.method}")


# ---------------------------------------------------------------- cluster resources
# (issue 8: Slurm profile) Portable resources for the rules. gpu=1 only when the job
# runs on CUDA, decided from config["device"] alone (not from the hardware of the host
# that plans the DAG: a login node has no GPU, and the job re-evaluates its resources on
# the compute node, so both must agree). `device: auto` therefore requests no GPU: on a
# cluster, set `device: cuda` to get GPU jobs. mem_mb and runtime grow with the size of
# the job's input (the feature file dominates) and by RETRY_GROWTH per retry
# (`retries:` in the profiles), so a job killed for memory or time comes back bigger.

RETRY_GROWTH = 1.5


def uses_cuda():
    return str(config["device"]).startswith("cuda")


def gpu_jobs(wildcards):
    """`gpu` resource: 1 for a job that runs on CUDA, else 0."""
    return 1 if uses_cuda() else 0


def scaled(base, per_input_mb=0.0, on="features"):
    """A resource callable: base + per_input_mb x size of input `on` (MB), x RETRY_GROWTH
    per retry. Scales by one named input that exists before the job's group starts (the
    feature file), not by input.size_mb: inside a job group, outputs of earlier group
    members do not exist when Slurm resources are computed, and would count as 0."""

    def resource(wildcards, input, attempt):
        size = 0.0
        if per_input_mb and on in input.keys() and os.path.exists(input[on]):
            size = os.path.getsize(input[on]) / 1e6
        return math.ceil((base + per_input_mb * size) * RETRY_GROWTH ** (attempt - 1))

    return resource


# ---------------------------------------------------------------- end cluster resources

# ---------------------------------------------------------------- datasets (issue 3)
# Real datasets: the registry (src/xmhash/data/datasets/) says which official files a
# source needs and whether it ships features to import. Download -> prepare layout:
#   resources/{dataset}/downloads/<official files> + manifest.json   (rule download)
#   resources/{dataset}/prepared/{items.jsonl,meta.json,images/}     (rule prepare)
#   results/{dataset}/features/<imported encoder>.h5                 (rule import_features)

import sys

if str(SRC) in sys.path:  # first: an editable install of another checkout must not win
    sys.path.remove(str(SRC))
sys.path.insert(0, str(SRC))
from xmhash.data.datasets import SOURCES as DATASET_SOURCES  # noqa: E402

# settings of datasets.<name> that are not options of the source's preparation
_NOT_DATASET_OPTIONS = ("source", "split", "encoder", "demo", "mirrors", "local_dir",
                        "official_urls")


def dataset_source(dataset):
    return DATASET_SOURCES[dataset_cfg(dataset)["source"]]


def real_datasets():
    return [d for d, c in config["datasets"].items() if c["source"] != "demo"]


def imported_encoder(dataset):
    """The encoder key of a dataset's imported features (None if it ships none)."""
    src = dataset_source(dataset)
    return src.encoder if src.import_features is not None else None


def imported_encoders():
    return sorted({imported_encoder(d) for d in real_datasets()} - {None})


def datasets_with_import():
    return [d for d in real_datasets() if imported_encoder(d)]


def datasets_with_prepare():
    return [d for d in real_datasets() if dataset_source(d).prepare is not None]


def downloads_manifest(wildcards):
    return f"resources/{wildcards.dataset}/downloads/manifest.json"


def prepared_path(wildcards):
    """The prepared dataset directory (items.jsonl, meta.json, images/): the feature
    stage's input."""
    return f"resources/{wildcards.dataset}/prepared"


def dataset_options(wildcards):
    cfg = dataset_cfg(wildcards.dataset)
    opts = {k: v for k, v in cfg.items() if k not in _NOT_DATASET_OPTIONS}
    return {"name": wildcards.dataset, **opts}


# options that name user-supplied files: inputs of prepare/import_features, so that
# editing such a file reruns the job
_USER_FILE_OPTIONS = ("manifest", "labels_file", "mat", "image_mat", "text_mat", "label_mat")


def dataset_inputs(wildcards):
    cfg = dataset_cfg(wildcards.dataset)
    user = {k: cfg[k] for k in _USER_FILE_OPTIONS if cfg.get(k)}
    return {"downloads": downloads_manifest(wildcards), **user}


def dataset_source_name(wildcards):
    return dataset_cfg(wildcards.dataset)["source"]


def dataset_code(wildcards):
    return code_fingerprint(
        "xmhash.data.stage", f"xmhash.data.datasets.{dataset_source_name(wildcards)}"
    )
