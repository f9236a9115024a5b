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
    return "synthetic" if cfg["source"] == "demo" else cfg["encoder"]


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
