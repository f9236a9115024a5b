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
    if cfg["source"] not in DATASET_SOURCES:  # features (issue 4): demo_images
        return cfg.get("encoder") or "vitb32"
    return cfg.get("encoder") or imported_encoder(dataset) or "vitb32"  # datasets (issue 3)


def features_path(wildcards):
    return f"results/{wildcards.dataset}/features/{encoder_key(wildcards.dataset)}.h5"


# ---- features ----------------------------------------------------------------


def datasets_with_prepared():
    """Datasets whose features the feature stage computes from a prepared directory."""
    return datasets_with_prepare() + datasets_with_source("demo_images")


def features_settings(wildcards):
    """The settings that change the feature file; the runtime settings (workers,
    batch_size, chunk_items, device, encoders) are read by the job from the config and
    rerun nothing."""
    from xmhash.features.settings import content_settings

    return content_settings(config.get("features", {}))


@lru_cache(maxsize=None)
def _encoder_identity(source):
    from xmhash.features.settings import encoder_identity

    # a local directory's files are hashed again only when one of them changed
    return encoder_identity(source, cache=".snakemake/xmhash/encoder_digests.json")


def features_encoder(wildcards):
    """The encoder's identity: a local directory's content digest, or the hub model id."""
    from xmhash.features.settings import resolve_encoder

    extra = config.get("features", {}).get("encoders")
    return _encoder_identity(resolve_encoder(wildcards.encoder, extra))


def features_gpu(wildcards):
    """Ask the scheduler for a GPU only when the feature stage is told to use CUDA."""
    from xmhash.device import wants_gpu
    from xmhash.features.settings import runtime_settings

    return 1 if wants_gpu(runtime_settings(config)["device"]) else 0


def demo_images_spec(wildcards):
    return dataset_cfg(wildcards.dataset).get("demo_images", {})



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
        *graph_report_targets(),
        "results/summary/metrics.tsv",
        "results/summary/tables.md",
        *expand(
            "results/summary/plots/{dataset}/{plot}.png",
            dataset=DATASETS,
            plot=["map_vs_bits", "pr", "pn"],
        ),
        *noise_targets(),
    ]


# ---------------------------------------------------------------- params


def demo_spec(wildcards):
    return dataset_cfg(wildcards.dataset).get("demo", {})


def split_spec(wildcards):
    return dataset_cfg(wildcards.dataset)["split"]


def method_params(wildcards):
    """methods.<method>, updated by method_overrides.<dataset>.<method>."""
    from xmhash.methods import method_config

    return method_config(config, wildcards.dataset, wildcards.method)


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
    """Datasets from the registry (not the built-in demos: demo, demo_images)."""
    return [d for d, c in config["datasets"].items() if c["source"] in DATASET_SOURCES]


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
# ---------------------------------------------------------------- noisy-label track (issue 7)
# Runs of noise.methods on training labels corrupted by noise.kinds x noise.rates live
# one level below the dataset: results/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}
# with {noise} a tag such as sym0.5 (xmhash.data.noise.tag); clean runs' paths are unchanged.

NOISE = config.get("noise", {})
NOISE_METHODS = NOISE.get("methods", [])
_check_keys(NOISE_METHODS, config.get("methods", {}), "methods")
NOISE_TAGS = [f"{k}{r:g}" for k in NOISE.get("kinds", []) for r in NOISE.get("rates", [])]
NRUN = "results/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"
NLOG = "logs/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"
NBENCH = "results/benchmarks/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"


def noisy_run_paths(filename, datasets=None):
    if not NOISE_METHODS or not NOISE_TAGS:
        return []
    return expand(
        f"{NRUN}/{filename}",
        dataset=datasets or DATASETS,
        noise=NOISE_TAGS,
        method=NOISE_METHODS,
        bits=BITS,
        seed=SEEDS,
    )


def noise_kind(wildcards):
    return wildcards.noise.rstrip("0123456789.")


def noise_rate(wildcards):
    return float(wildcards.noise[len(noise_kind(wildcards)) :])


def noisy_method_params(wildcards):
    """methods.<method>, updated by noise.overrides.<dataset>.<method> (per-dataset paper
    values, e.g. RSHNL's alpha and gamma)."""
    over = NOISE.get("overrides", {}).get(wildcards.dataset, {}).get(wildcards.method, {})
    return {**method_params(wildcards), **over}


def noisy_train_settings(wildcards):
    return {**train_settings(wildcards), "select": NOISE.get("select", "val")}


def report_methods():
    """Method order of the tables: the clean grid's, then the noisy track's."""
    return list(dict.fromkeys([*METHODS, *NOISE_METHODS]))


def noise_targets():
    """The noisy track's extra report outputs (weight histograms), if it runs."""
    if not noisy_run_paths("metrics.json"):
        return []
    return [
        "results/summary/noise_table.md",
        *expand("results/summary/plots/{dataset}/noise_weights.png", dataset=DATASETS),
    ]
# ---------------------------------------------------------------- graphs (graph stage)
# A method that trains on graphs names their kinds in a class attribute
# `graphs = ("vtmuch",)` (a literal tuple); it is read from the method's source, like the
# code fingerprints, so the DAG is built without importing torch. The train job then gets
# each graph file as a named input `graph_<kind>`.

GRAPH = "results/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_LOG = "logs/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_BENCH = "results/benchmarks/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_SETTINGS = ("max_dense",)
GRAPH_KINDS = [k for k in config.get("graph", {}) if k not in GRAPH_SETTINGS]


@lru_cache(maxsize=None)
def method_graphs(method):
    path = _module_file(f"xmhash.methods.{method}")
    if path is None:
        return ()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                target = (stmt.targets[0] if isinstance(stmt, ast.Assign)
                          else getattr(stmt, "target", None))
                if isinstance(target, ast.Name) and target.id == "graphs" and stmt.value:
                    kinds = tuple(ast.literal_eval(stmt.value))
                    missing = [k for k in kinds if k not in GRAPH_KINDS]
                    if missing:
                        raise WorkflowError(
                            f"method {method} trains on graph(s) {missing}, which have no "
                            f"block under `graph:` in config.yaml (defined: {GRAPH_KINDS})"
                        )
                    return kinds
    return ()


def graph_file(dataset, kind, seed, ext=".h5"):
    return GRAPH.format(dataset=dataset, encoder=encoder_key(dataset), kind=kind,
                        seed=seed) + ext


def graph_inputs(wildcards):
    """Named train inputs {graph_<kind>: graph file} of the method's graphs (or none)."""
    return {
        f"graph_{kind}": graph_file(wildcards.dataset, kind, wildcards.seed)
        for kind in method_graphs(wildcards.method)
    }


def graph_spec(wildcards):
    return config["graph"][wildcards.kind] or {}


def graph_settings(wildcards):
    return {"device": config["device"],
            **{k: config["graph"][k] for k in GRAPH_SETTINGS if k in config["graph"]}}


def graph_report_targets():
    """The community-size plot of every graph a method of the grid trains on."""
    return sorted({
        graph_file(d, kind, seed, "_sizes.png")
        for d in DATASETS for m in METHODS for kind in method_graphs(m) for seed in SEEDS
    })
