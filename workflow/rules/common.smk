# Snakemake glue shared by the .smk files (config checks, path and parameter functions,
# target lists, resources); the logic behind them is in xmhash.plan, tested on its own.

import math
import os
import sys
from functools import lru_cache
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The DAG is planned with the xmhash of this checkout, as its jobs run it
# (scripts/_bootstrap.py), whatever copy of the package is installed.
SRC = Path(workflow.basedir).parent / "src"
sys.path[:0] = [str(SRC)]

from xmhash import plan  # noqa: E402
from xmhash.data.datasets import SOURCES as DATASET_SOURCES  # noqa: E402


def _checked(check, *args, **kwargs):
    """Run a config check; a ConfigError becomes a short WorkflowError (no traceback)."""
    try:
        return check(*args, **kwargs)
    except plan.ConfigError as e:
        raise WorkflowError(str(e)) from None


# ---------------------------------------------------------------- config checks

_checked(plan.validate_config, config, Path(workflow.basedir) / "schemas/config.schema.yaml")
_checked(
    plan.check_names, config["run"]["datasets"], config["datasets"], "run.datasets", "datasets"
)
_checked(plan.check_names, config["run"]["methods"], config["methods"], "run.methods", "methods")
_checked(plan.check_per_dataset_keys, config)
for _line in plan.unused_per_dataset_entries(config):
    logger.info(f"config: {_line}")

DATASETS = config["run"]["datasets"]
METHODS = config["run"]["methods"]
BITS = config["run"]["bits"]
SEEDS = config["run"]["seeds"]
SOURCE = plan.SourceTree(SRC)
alternatives = plan.alternatives


def code_fingerprint(*modules, exclude=()):
    """Digest of the xmhash source a job runs (a rule's `code` param): see xmhash.plan."""
    return _checked(SOURCE.fingerprint, *modules, exclude=tuple(exclude))


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
    if cfg["source"] not in DATASET_SOURCES:  # demo_images
        return cfg.get("encoder") or "vitb32"
    return cfg.get("encoder") or imported_encoder(dataset) or "vitb32"


def features_path(wildcards):
    return f"results/{wildcards.dataset}/features/{encoder_key(wildcards.dataset)}.h5"


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


def features_threads(wildcards):
    """The feature job's threads (features.threads; auto sizes itself to the node on CUDA,
    up to features.max_threads); its decode workers follow them, and on Slurm so does
    --cpus-per-task."""
    from xmhash.features.settings import job_threads

    return job_threads(
        config.get("features", {}), cuda=bool(features_gpu(wildcards)), cpu_count=os.cpu_count()
    )


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
    return plan.grid_paths(
        f"{RUN}/{filename}", dataset=datasets or DATASETS, method=METHODS, bits=BITS, seed=SEEDS
    )


def published_input(wildcards):
    """The published-numbers file, when the report shows ours beside it."""
    return [config["report"]["published"]] if config["report"]["published_as"] else []


def mat_targets():
    """codes.mat of every run, when evaluation.export_mat asks for them."""
    if not config["evaluation"]["export_mat"]:
        return []
    return run_paths("codes.mat") + noisy_run_paths("codes.mat")


# what each run leaves in its directory; rule all asks for them all, so that a deleted run
# directory is rebuilt (Snakemake does not rebuild a missing file whose dependants exist)
RUN_FILES = ("model.pt", "train.json", "train_log.csv", "codes.h5", "metrics.json")
NOISY_RUN_FILES = (*RUN_FILES, "sample_weights.npz")


def final_targets():
    return [
        *[p for name in RUN_FILES for p in run_paths(name)],
        *[p for name in NOISY_RUN_FILES for p in noisy_run_paths(name)],
        *graph_report_targets(),
        "results/summary/metrics.tsv",
        "results/summary/tables.md",
        "results/summary/runtime.md",
        *plan.grid_paths(
            "results/summary/plots/{dataset}/{plot}.png",
            dataset=DATASETS,
            plot=["map_vs_bits", "pr", "pn"],
        ),
        *noise_targets(),
        *mat_targets(),
    ]


def summarise_finished_runs(benchmarks):
    """The summary from the runs that finished (on error; see evaluate.smk)."""
    from xmhash.report.finished import summarise_finished

    def files(paths, names):
        return {str(Path(p).parent): [str(Path(p).parent / n) for n in names] for p in paths}

    published = published_input(None)
    summarise_finished(
        files(run_paths("metrics.json"), RUN_FILES)
        | files(noisy_run_paths("metrics.json"), NOISY_RUN_FILES),
        summary="results/summary",
        tables={
            "metrics": config["report"]["table_metrics"],
            "methods": report_methods(),
            "published_tsv": published[0] if published else None,
            "published_as": config["report"]["published_as"],
        },
        datasets=DATASETS,
        methods=METHODS,
        benchmarks={k.removeprefix("bench_"): v for k, v in benchmarks.items()},
        graph_stats=graph_stats_files(),
    )


# ---------------------------------------------------------------- params
# `device` is in no rule's params: where a job runs does not change what it writes
# (beyond floating-point noise), so moving a run to a GPU reruns nothing; the scripts
# read it from the config (scripts/_bootstrap.py: device()).


def demo_spec(wildcards):
    return dataset_cfg(wildcards.dataset).get("demo", {})


def split_spec(wildcards):
    return dataset_cfg(wildcards.dataset)["split"]


def method_params(wildcards):
    """methods.<method>, updated by method_overrides.<dataset>.<method>."""
    from xmhash.plan import method_config

    return method_config(config, wildcards.dataset, wildcards.method)


def train_settings(wildcards):
    """training: what changes the model. checkpoint_minutes only sets how often a job saves
    a resumable state (a resumed run equals an uninterrupted one) and threads how many
    cores it uses; val_every and select_metric matter only when validation selects the
    model (select: val)."""
    return _model_settings(config["training"])


def _model_settings(training):
    unused = RUNTIME_TRAINING + (() if training["select"] == "val" else SELECTION_ONLY)
    return {k: v for k, v in training.items() if k not in unused}


# training settings a job reads from the config (scripts/_bootstrap.py), not its params
RUNTIME_TRAINING = ("checkpoint_minutes", "threads")
# training settings that matter only when validation selects the model (select: val)
SELECTION_ONLY = ("val_every", "select_metric")


def evaluation_settings(wildcards):
    """evaluation: minus export_mat (which adds codes.mat files, not metrics)."""
    return {k: v for k, v in config["evaluation"].items() if k != "export_mat"}


def train_code(wildcards):
    unused = () if config["training"]["select"] == "val" else ("xmhash.metrics",)
    return code_fingerprint("xmhash.train", f"xmhash.methods.{wildcards.method}", exclude=unused)


def export_code(wildcards):
    return code_fingerprint("xmhash.export", f"xmhash.methods.{wildcards.method}")


# ---------------------------------------------------------------- cluster resources
# gpu=1 exactly for the jobs that run on CUDA, decided from the config alone (not from
# the hardware of the host that plans the DAG: a login node has no GPU, and the job
# re-evaluates its resources on the compute node, so both must agree). `device: auto`
# therefore requests no GPU: on a cluster, set `device: cuda` to get GPU jobs. mem_mb and
# runtime grow with the size of the job's input (the feature file dominates) and by
# RETRY_GROWTH per retry (`retries:` in the profiles), so a job killed for memory or
# time comes back bigger.

RETRY_GROWTH = 1.5


def uses_cuda():
    return str(config["device"]).startswith("cuda")


def gpu_jobs(wildcards):
    """`gpu` resource of the jobs that run on `device`: 1 on CUDA, else 0."""
    return 1 if uses_cuda() else 0


def gpu_share(wildcards):
    """`gpu_load` (percent of one GPU) of a CUDA training or export job: the default
    profile caps the sum at `gpu_load: 100`, so `jobs_per_gpu` of them share the GPU."""
    return 100 // config["jobs_per_gpu"] if uses_cuda() else 0


def gpu_whole(wildcards):
    """`gpu_load` of a CUDA job that wants the whole GPU (graphs)."""
    return 100 if uses_cuda() else 0


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


# ---------------------------------------------------------------- real datasets
# The registry (src/xmhash/data/datasets/) says which official files a source needs and
# whether it ships features to import. Download -> prepare layout:
#   resources/{dataset}/downloads/<official files> + manifest.json   (rule download)
#   resources/{dataset}/prepared/{items.jsonl,meta.json,images/}     (rule prepare)
#   results/{dataset}/features/<imported encoder>.h5                 (rule import_features)

# settings of datasets.<name> that are not options of the source's preparation
_NOT_DATASET_OPTIONS = (
    "source",
    "split",
    "encoder",
    "demo",
    "mirrors",
    "local_dir",
    "official_urls",
)


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
_USER_FILE_OPTIONS = (
    "manifest",
    "labels_file",
    "mat",
    "image_mat",
    "text_mat",
    "label_mat",
    "index_mat",
)


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


# ---------------------------------------------------------------- noisy-label track
# Runs of noise.methods on training labels corrupted by noise.kinds x noise.rates live
# one level below the dataset: results/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}
# with {noise} a tag such as sym0.5 (xmhash.data.noise.tag); clean runs' paths are unchanged.

NOISE = config.get("noise", {})
NOISE_METHODS = NOISE.get("methods", [])
_checked(plan.check_names, NOISE_METHODS, config["methods"], "noise.methods", "methods")
NOISE_TAGS = plan.noise_tags(NOISE.get("kinds", []), NOISE.get("rates", []))
NOISE_TAG = plan.noise_tag_pattern()
NRUN = "results/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"
NLOG = "logs/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"
NBENCH = "results/benchmarks/{dataset}/noise{noise}/{method}/{bits}bits/seed{seed}"


def noisy_run_paths(filename, datasets=None):
    if not NOISE_METHODS or not NOISE_TAGS:
        return []
    return plan.grid_paths(
        f"{NRUN}/{filename}",
        dataset=datasets or DATASETS,
        noise=NOISE_TAGS,
        method=NOISE_METHODS,
        bits=BITS,
        seed=SEEDS,
    )


def noise_kind(wildcards):
    return plan.parse_noise_tag(wildcards.noise)[0]


def noise_rate(wildcards):
    return plan.parse_noise_tag(wildcards.noise)[1]


def noisy_method_params(wildcards):
    """methods.<method>, updated by noise.overrides.<dataset>.<method> (per-dataset paper
    values, e.g. RSHNL's alpha and gamma)."""
    over = plan.dataset_entry(config, ("noise", "overrides"), wildcards.dataset)
    over = over.get(wildcards.method, {})
    return {**method_params(wildcards), **over}


def noisy_train_settings(wildcards):
    return _model_settings({**config["training"], "select": NOISE.get("select", "val")})


def report_methods():
    """Method order of the tables: the clean grid's, then the noisy track's."""
    return list(dict.fromkeys([*METHODS, *NOISE_METHODS]))


def noise_targets():
    """The noisy track's extra report outputs (weight histograms), if it runs."""
    if not noisy_run_paths("metrics.json"):
        return []
    return [
        "results/summary/noise_table.md",
        *plan.grid_paths("results/summary/plots/{dataset}/noise_weights.png", dataset=DATASETS),
    ]


# ---------------------------------------------------------------- graphs
# A method that trains on graphs names their kinds in a class attribute
# `graphs = ("vtmuch",)` (read from its source: xmhash.plan.SourceTree.method_graphs);
# the train job then gets each graph file as a named input `graph_<kind>`.

GRAPH = "results/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_LOG = "logs/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_BENCH = "results/benchmarks/{dataset}/graph/{encoder}/{kind}/seed{seed}"
GRAPH_SETTINGS = ("max_dense",)
GRAPH_KINDS = tuple(k for k in config.get("graph", {}) if k not in GRAPH_SETTINGS)


def method_graphs(method):
    return _checked(SOURCE.method_graphs, method, GRAPH_KINDS)


def graph_file(dataset, kind, seed, ext=".h5"):
    return GRAPH.format(dataset=dataset, encoder=encoder_key(dataset), kind=kind, seed=seed) + ext


def graph_inputs(wildcards):
    """Named train inputs {graph_<kind>: graph file} of the method's graphs (or none)."""
    return {
        f"graph_{kind}": graph_file(wildcards.dataset, kind, wildcards.seed)
        for kind in method_graphs(wildcards.method)
    }


def graph_spec(wildcards):
    return config["graph"][wildcards.kind] or {}


def graph_settings(wildcards):
    return {k: config["graph"][k] for k in GRAPH_SETTINGS if k in config["graph"]}


def graph_stats_files():
    """The statistics file of every graph a method of the grid trains on."""
    return [p.replace("_sizes.png", ".json") for p in graph_report_targets()]


def graph_report_targets():
    """The community-size plot of every graph a method of the grid trains on."""
    return sorted(
        {
            graph_file(d, kind, seed, "_sizes.png")
            for d in DATASETS
            for m in METHODS
            for kind in method_graphs(m)
            for seed in SEEDS
        }
    )


# ---------------------------------------------------------------- report
def _bench(path):
    """A job's benchmark file: its output's path under results/benchmarks/."""
    return path.replace("results/", "results/benchmarks/", 1)


def _selected(datasets):
    return [d for d in DATASETS if d in datasets]


def computes_features(dataset):
    """Whether the feature stage encodes the dataset's prepared directory (rather than
    importing shipped features or generating the synthetic demo)."""
    if dataset in datasets_with_source("demo_images"):
        return True
    return dataset in datasets_with_prepare() and encoder_key(dataset) != imported_encoder(dataset)


def example_images(wildcards):
    """The prepared directory, whose image files the retrieval figure shows, where the
    features were computed from it."""
    return [prepared_path(wildcards)] if computes_features(wildcards.dataset) else []


def job_benchmarks():
    """{rule: benchmark files} of every job of the workflow but `runtime` and `all`."""
    graphs = graph_report_targets()
    noisy = noise_targets()
    return {
        "download": [f"results/benchmarks/{d}/download.tsv" for d in _selected(real_datasets())],
        "prepare": [
            f"results/benchmarks/{d}/prepare.tsv"
            for d in _selected(datasets_with_prepare())
            if computes_features(d)
        ],
        "demo_images": [
            f"results/benchmarks/{d}/prepared.tsv"
            for d in _selected(datasets_with_source("demo_images"))
        ],
        "features": [f"results/benchmarks/{d}/features/{encoder_key(d)}.tsv" for d in DATASETS],
        "split": plan.grid_paths(
            "results/benchmarks/{dataset}/splits/seed{seed}.tsv", dataset=DATASETS, seed=SEEDS
        ),
        "noise": plan.grid_paths(
            "results/benchmarks/{dataset}/noise/{noise}/seed{seed}.tsv",
            dataset=DATASETS,
            noise=NOISE_TAGS if NOISE_METHODS else [],
            seed=SEEDS,
        ),
        "graph": [_bench(p).replace("_sizes.png", ".tsv") for p in graphs],
        "graph_plot": [_bench(p).replace("_sizes.png", "_plot.tsv") for p in graphs],
        **{
            f"{rule}{track}": [_bench(p) for p in paths(f"{stage}.tsv")]
            for rule, stage in (
                ("train", "train"),
                ("export_codes", "export"),
                ("evaluate", "evaluate"),
            )
            for track, paths in (("", run_paths), ("_noisy", noisy_run_paths))
        },
        "codes_mat": [
            f"results/benchmarks/codes_mat/{Path(p).parent.as_posix()}.tsv" for p in mat_targets()
        ],
        "aggregate": ["results/benchmarks/summary/aggregate.tsv"],
        "tables": ["results/benchmarks/summary/tables.tsv"],
        "plots": [f"results/benchmarks/summary/plots/{d}.tsv" for d in DATASETS],
        "noise_weights_plot": [
            _bench(p).replace(".png", ".tsv") for p in noisy if p.endswith("noise_weights.png")
        ],
        "noise_table": [_bench(p).replace(".md", ".tsv") for p in noisy if p.endswith(".md")],
    }


def evaluation_database(wildcards):
    """What each query ranks on this dataset (evaluation.database, or the dataset's own)."""
    return dataset_cfg(wildcards.dataset).get("database") or config["evaluation"]["database"]


def example_codes(wildcards):
    """The codes of the qualitative retrieval figure: a reproduced paper's method (else
    the grid's first), at the longest code length, of the first seed."""
    from xmhash.report.names import example_method

    run = RUN.format(
        dataset=wildcards.dataset, method=example_method(METHODS), bits=max(BITS), seed=SEEDS[0]
    )
    return f"{run}/codes.h5"
