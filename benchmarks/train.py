"""Training speed at a config's widths and dataset shapes, on this machine (CPU or CUDA).

    python benchmarks/train.py --configfile config/paper/vtmuch.yaml
    python benchmarks/train.py --configfile config/paper/ucch.yaml --methods ucch --items 2048
    python benchmarks/train.py --job-cost [--methods djsrh ucch]

The config is read as the workflow reads it: config.yaml, updated by each ``--configfile``
(nested blocks merged, lists replaced). Each method trains with its ``methods.<name>``
block (the paper's widths, batch sizes and learning rates) on synthetic features with
the shape of the chosen dataset's training split (``--dataset``, default the config's
first: MIRFlickr's 20,015 pairs give 5,000 training items under the VTM-UCH protocol and
16,015 under UCCH's ``train: all``), ``--items`` to train on fewer. Graph targets are
random matrices of the right shape (the graph stage is its own job) and VTM-UCH's
``finetune`` variant fine-tunes a randomly initialised ViT-B/32 CLIP text tower.

Per method: seconds per epoch and samples/s (median of ``--epochs`` timed epochs); the
FLOPs of one epoch (torch's FlopCounterMode over a separate warm-up epoch, without the
``setup`` precomputation); GFLOP/s and its share of a plain square matmul's GFLOP/s
measured in the same run at the same precision settings (the practical peak); peak memory
(process RSS on CPU, tensors allocated on CUDA); on CUDA the share of an epoch the GPU
was busy (kernel and copy time of one profiled epoch over the unprofiled epoch time);
and the time of the config's grid for the method (epochs x code lengths x seeds).
``--profile`` prints torch.profiler's top operators of one epoch per method (where
the time goes).

``--job-cost``: one small demo train job (config.yaml's demo dataset and widths) as the
workflow runs it, in a fresh process: interpreter start and exit, imports, data load +
model build + setup + model save, and the epochs; the fixed part against the per-epoch
part decides whether several runs share a process or N processes share a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _limits import PeakMemory, device_seconds, matmul_gflops, sync  # benchmarks/_limits.py
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.device import resolve_device  # noqa: E402
from xmhash.methods import METHODS  # noqa: E402
from xmhash.methods.base import ClosedFormMethod, TrainData  # noqa: E402
from xmhash.train import TrainSettings, fit  # noqa: E402

# Items and labels of the real datasets (their registry entries' documented sizes).
DATASET_SIZES: dict[str, tuple[int, int]] = {
    "mirflickr25k": (20_015, 24),
    "nuswide:tc10": (186_577, 10),
    "nuswide:tc21": (195_834, 21),
    "coco2014": (122_218, 80),
    "iaprtc12": (20_000, 255),
    "wikipedia": (2_866, 10),
}


@dataclass(frozen=True)
class Shape:
    """The training split a config gives a dataset: items, feature width, labels."""

    dataset: str
    n_train: int
    dim: int
    n_labels: int
    single_label: bool = False


def merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update`` as Snakemake merges ``--configfile``s: nested
    mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(configfiles: list[str] | None = None) -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in configfiles or []:
        cfg = merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return cfg


def dataset_shape(cfg: dict[str, Any], dataset: str, dim: int = 512) -> Shape:
    block = cfg["datasets"][dataset]
    if block["source"] == "demo":
        spec = DemoSpec(**(block.get("demo") or {}))
        n, labels, single = spec.n_items, spec.n_labels, spec.max_labels == 1
        dim = spec.image_dim
    else:
        key = block["source"] + (f":{block['variant']}" if "variant" in block else "")
        if key not in DATASET_SIZES:
            raise SystemExit(f"{dataset}: no known size for source {key!r}")
        (n, labels), single = DATASET_SIZES[key], False
    split = block["split"]
    train = split["train"]
    n_train = n - split["query"] - split["val"] if train == "all" else int(train)
    return Shape(dataset, n_train, dim, labels, single)


def grid_runs(cfg: dict[str, Any]) -> int:
    """Trainings per method in the config's grid (per dataset): code lengths x seeds."""
    return len(cfg["run"]["bits"]) * len(cfg["run"]["seeds"])


# ---------------------------------------------------------------- data


def synthetic_features(shape: Shape, seed: int = 0):
    spec = DemoSpec(
        n_items=shape.n_train,
        n_labels=shape.n_labels,
        max_labels=1 if shape.single_label else min(5, shape.n_labels),
        image_dim=shape.dim,
        text_dim=shape.dim,
        seed=seed,
    )
    return generate_demo(spec)


def random_clip(directory: Path) -> Path:
    """A ViT-B/32-sized CLIP text tower (``CLIPTextModelWithProjection``, 512-d
    projection, 77 positions) with random weights and a byte-level tokenizer, saved."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.tiny_models import EOT, SOT, save_byte_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no load reports or progress bars between the rows
    hf_logging.disable_progress_bar()
    if not (directory / "config.json").exists():
        vocab = save_byte_tokenizer(directory, 77)
        ids = {"bos_token_id": vocab[SOT], "eos_token_id": vocab[EOT], "pad_token_id": vocab[EOT]}
        torch.manual_seed(0)
        config = CLIPTextConfig(projection_dim=512, max_position_embeddings=77, **ids)
        CLIPTextModelWithProjection(config).save_pretrained(str(directory))
    return directory


def random_target(path: Path, rows: np.ndarray, seed: int = 0) -> Path:
    """A VTM-UCH-style target S in [-1, 1] (+1 within random communities, a soft
    cosine elsewhere) for ``rows``, written as the graph stage writes it."""
    from xmhash.graph.store import GraphFile, write_graph

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    n = len(rows)
    communities = rng.integers(0, max(2, n // 200), n)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    target = x @ x.T
    target[communities[:, None] == communities[None, :]] = 1.0
    write_graph(path, GraphFile(kind="vtmuch", rows=rows, communities=communities, target=target))
    return path


def train_data(cls, block: dict, feats, device: torch.device, tmp: Path) -> TrainData:
    """The training inputs ``cls`` needs, on ``device``."""
    rows = np.arange(len(feats.image))
    data = TrainData(
        image=torch.from_numpy(feats.image).to(device),
        text=torch.from_numpy(feats.text).to(device),
        rows=rows,
        labels=torch.from_numpy(feats.labels).float().to(device) if cls.supervised else None,
        texts=list(feats.texts) if "texts" in cls.needs else None,
        words=feats.words if "words" in cls.needs else None,
        regions=feats.regions if "regions" in cls.needs else None,
    )
    for kind in cls.graphs:
        data.graph[kind] = random_target(tmp / f"{kind}-{len(rows)}.h5", rows)
    if "encoder" in cls.needs and (block or {}).get("variant") == "finetune":
        data.resources["encoder"] = str(random_clip(tmp / "clip"))
    return data


def make(cls, block: dict, bits: int, dim: int, device, resources=None, **override):
    params = cls.Params.from_config({**(block or {}), **override}, f"methods.{cls.name}")
    return cls(
        params,
        bits=bits,
        image_dim=dim,
        text_dim=dim,
        seed=0,
        device=device,
        resources=resources,
    )


# ---------------------------------------------------------------- one method


@dataclass
class Result:
    method: str
    batch: int
    seconds: float  # per epoch (closed form: the fit)
    samples_s: float
    gflop: float  # per epoch
    peak_bytes: int
    busy: float  # share of the epoch the GPU ran kernels or copies (nan on CPU)
    epochs: int  # the config's epochs (1 for closed-form)
    error: str = ""
    limit: float = float("nan")  # matmul GFLOP/s around this method's run

    @property
    def gflops(self) -> float:
        return self.gflop / self.seconds if self.seconds else float("nan")


def count_gflop(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def bench_method(
    name: str,
    block: dict,
    feats,
    bits: int,
    epochs: int,
    device: torch.device,
    tmp: Path,
    profile: bool = False,
) -> Result:
    cls = METHODS[name]
    block = dict(block or {})
    data = train_data(cls, block, feats, device, tmp)
    settings = TrainSettings(device=str(device))
    dim, res, n = feats.image.shape[1], data.resources, len(data)

    def new(**kw):
        return make(cls, block, bits, dim, device, res, **kw)

    if issubclass(cls, ClosedFormMethod):
        gflop = count_gflop(lambda: fit(new(), data, settings))  # also the warm-up
        with PeakMemory(device) as mem:
            t = time.perf_counter()
            fit(new(), data, settings)
            sync(device)
            secs = time.perf_counter() - t
        return Result(name, n, secs, n / secs, gflop, mem.peak, float("nan"), 1)

    # a warm-up epoch, counted: the FLOPs of one epoch without the setup precomputation
    gflop = count_gflop(lambda: fit(new(epochs=1), data, settings))
    gflop -= count_gflop(lambda: new(epochs=1).setup(data))
    with PeakMemory(device) as mem:
        history = fit(new(epochs=epochs), data, settings)["history"]
    secs = statistics.median(h["seconds"] for h in history)
    busy = float("nan")
    if device.type == "cuda":
        model = new(epochs=1)
        _, kernel_s = device_seconds(lambda: fit(model, data, settings), device)
        busy = min(1.0, kernel_s / secs)
    if profile:  # the model is built outside: the table is the epoch's, not the init's
        model = new(epochs=1)
        print_profile(name, lambda: fit(model, data, settings), device)
    batch = int(getattr(cls.Params.from_config(block, name), "batch_size", n))
    return Result(name, batch, secs, n / secs, gflop, mem.peak, busy, int(block.get("epochs", 1)))


def print_profile(name: str, fn, device: torch.device, rows: int = 12) -> None:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\n{name}: top operators of one epoch")
    print(prof.key_averages().table(sort_by=key, row_limit=rows), flush=True)


# ---------------------------------------------------------------- the table


def run(
    cfg: dict[str, Any],
    methods: list[str],
    shape: Shape,
    *,
    bits: int,
    epochs: int,
    device: torch.device,
    budget_s: float = float("inf"),
    profile: bool = False,
    out=print,
    on_result=None,
) -> list[Result]:
    """Benchmark ``methods`` at ``shape``; methods still waiting when ``budget_s`` is
    spent are reported as skipped; ``on_result`` is called with each result as it comes.
    Each method's rate is a share of the matmul limit
    measured just before and after it (the mean), as the load of a shared machine moves."""
    start = time.perf_counter()
    feats = synthetic_features(shape)
    size = 4096 if device.type == "cuda" else 1024
    peak = matmul_gflops(size, device=device)
    runs = grid_runs(cfg)
    out(
        f"{shape.dataset}: {shape.n_train} training items x {shape.dim}-d, {bits} bits, "
        f"device {device}, {torch.get_num_threads()} threads; matmul limit now {peak:.1f} GFLOP/s"
        f" (fp32{', TF32 allowed' if torch.backends.cuda.matmul.allow_tf32 else ''}); "
        f"grid = epochs x {runs} runs (bits x seeds)"
    )
    out(
        f"{'method':<11}{'batch':>6}{'s/epoch':>9}{'samples/s':>11}{'GFLOP/ep':>10}"
        f"{'GFLOP/s':>9}{'limit':>7}{'of limit':>9}{'peak GiB':>9}{'GPU busy':>9}{'epochs':>7}"
        f"{'grid s':>8}"
    )
    results, total, before = [], 0.0, peak
    with tempfile.TemporaryDirectory() as tmp:
        for name in methods:
            if time.perf_counter() - start > budget_s:
                why = f"skipped: the time budget of {budget_s:.0f} s is spent"
                out(f"{name:<11} {why}")
                if on_result:
                    on_result(Result(name, 0, *(float("nan"),) * 3, 0, float("nan"), 0, why))
                continue
            try:
                r = bench_method(
                    name,
                    cfg["methods"].get(name) or {},
                    feats,
                    bits,
                    epochs,
                    device,
                    Path(tmp),
                    profile=profile,
                )
            except Exception as e:  # noqa: BLE001 - one method's failure is one row
                out(f"{name:<11} error: {type(e).__name__}: {e}")
                failed = Result(name, 0, *(float("nan"),) * 3, 0, float("nan"), 0, str(e))
                results.append(failed)
                if on_result:
                    on_result(failed)
                continue
            after = matmul_gflops(size, device=device)  # the load may have changed meanwhile
            r.limit, before = (before + after) / 2, after
            grid = r.seconds * r.epochs * runs
            total += grid
            rate = r.gflops
            out(
                f"{name:<11}{r.batch:>6}{r.seconds:>9.3f}{r.samples_s:>11.0f}{r.gflop:>10.1f}"
                f"{rate:>9.1f}{r.limit:>7.0f}{rate / r.limit:>9.2f}{r.peak_bytes / 2**30:>9.2f}"
                f"{r.busy:>9.2f}{r.epochs:>7}{grid:>8.0f}"
            )
            results.append(r)
            if on_result:
                on_result(r)
    out(
        f"grid of these methods (x {runs} runs, paper epochs): {total / 60:.1f} min of "
        f"{device.type.upper()} time at {shape.n_train} items"
    )
    return results


# ---------------------------------------------------------------- job cost

JOB = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {src!r})
import torch
from xmhash.train import TrainSettings, run_training
t1 = time.perf_counter()
s = run_training(features={features!r}, split={split!r}, method={method!r}, params={params!r},
    bits=32, seed=0, settings=TrainSettings(device="cpu"), model_out={out!r} + "/model.pt",
    summary_out={out!r} + "/train.json", history_out={out!r} + "/train_log.csv", threads=1)
t2 = time.perf_counter()
epochs = [h["seconds"] for h in s["history"]]
print(json.dumps({{"imports": t1 - t0, "run": t2 - t1, "epochs": epochs}}))
"""


def job_cost(methods: list[str], out=print) -> list[dict[str, Any]]:
    """Fixed and per-epoch cost of one demo train job per method, each in a new process."""
    from xmhash.data.splits import make_split, save_split
    from xmhash.features.store import write_features

    cfg = load_config()
    demo = cfg["datasets"]["demo"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        feats_path, split_path = Path(tmp) / "features.h5", Path(tmp) / "split.npz"
        feats = generate_demo(DemoSpec(**demo["demo"]))
        write_features(feats_path, feats)
        save_split(split_path, make_split(len(feats.image), seed=0, **demo["split"]))
        out(
            f"one demo train job per method (config.yaml: {demo['split']['train']} training "
            "items, demo widths and epochs, 1 thread, CPU), each in a fresh process"
        )
        out(
            f"{'method':<10}{'process':>9}{'imports':>9}{'load+build':>11}{'s/epoch':>9}"
            f"{'epochs':>7}{'total s':>9}{'fixed %':>8}"
        )
        for name in methods:
            if issubclass(METHODS[name], ClosedFormMethod) or METHODS[name].graphs:
                continue  # no epochs, or needs a graph-stage file
            job_dir = Path(tmp) / name
            job_dir.mkdir()
            code = JOB.format(
                src=str(REPO / "src"),
                features=str(feats_path),
                split=str(split_path),
                method=name,
                params=cfg["methods"].get(name) or {},
                out=str(job_dir),
            )
            env = {**os.environ, "XMHASH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env
            )
            wall = time.perf_counter() - t
            if proc.returncode:
                out(f"{name:<10} error: {proc.stderr.strip().splitlines()[-1]}")
                continue
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            train = sum(m["epochs"])
            row = {
                "method": name,
                "process": wall - m["imports"] - m["run"],
                "imports": m["imports"],
                "load_build": m["run"] - train,
                "epoch": statistics.median(m["epochs"]),
                "epochs": len(m["epochs"]),
                "total": wall,
            }
            row["fixed"] = (wall - train) / wall
            rows.append(row)
            out(
                f"{name:<10}{row['process']:>9.2f}{row['imports']:>9.2f}{row['load_build']:>11.2f}"
                f"{row['epoch']:>9.3f}{row['epochs']:>7}{wall:>9.2f}{100 * row['fixed']:>7.0f}%"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="*", default=[], help="merged over config.yaml")
    ap.add_argument("--dataset", help="default: the config's first run.datasets")
    ap.add_argument("--methods", nargs="+", help="default: the config's run.methods")
    ap.add_argument("--items", type=int, help="train on this many items instead")
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (after 1 warm-up)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--budget", type=float, default=float("inf"), help="seconds")
    ap.add_argument("--profile", action="store_true", help="top operators per method")
    ap.add_argument("--job-cost", action="store_true", help="fixed vs per-epoch cost of a job")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    cfg = load_config(args.configfile)
    methods = args.methods or [m for m in cfg["run"]["methods"] if m in METHODS]
    if args.job_cost:
        job_cost(methods)
        return
    shape = dataset_shape(cfg, args.dataset or cfg["run"]["datasets"][0])
    if args.items:
        shape = Shape(shape.dataset, args.items, shape.dim, shape.n_labels, shape.single_label)
    run(
        cfg,
        methods,
        shape,
        bits=args.bits,
        epochs=args.epochs,
        device=resolve_device(args.device),
        budget_s=args.budget,
        profile=args.profile,
    )


if __name__ == "__main__":
    main()
