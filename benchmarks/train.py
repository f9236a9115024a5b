"""Training speed of every registered method on a MIRFlickr-sized demo, on this machine.

    python benchmarks/train.py [--methods ucch djsrh] [--n 5000] [--bits 32] [--threads 2]

For each method: seconds per epoch and samples/s (the median of the timed epochs, after
a warm-up epoch; closed-form methods: the whole fit), the training FLOPs per epoch
(counted by torch's FlopCounterMode over one epoch) and the effective GFLOP/s they reach
as a share of a plain float32 matmul's GFLOP/s measured in the same run (the machine's
practical peak for this kind of work). Then the whole grid: methods x 4 code lengths x 1
seed at the epochs of the paper configs (config/paper/*.yaml; the demo epochs of
config.yaml where no paper config sets them).
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _limits import matmul_gflops  # benchmarks/_limits.py
from torch.utils.flop_counter import FlopCounterMode

from xmhash.data.demo import DemoSpec, generate_demo
from xmhash.methods import METHODS
from xmhash.methods.base import ClosedFormMethod, TrainData
from xmhash.train import TrainSettings, fit

REPO = Path(__file__).resolve().parents[1]


def method_blocks(paths: list[str]) -> tuple[dict, dict]:
    """(demo blocks from config.yaml, epochs set by paper configs)."""
    demo = yaml.safe_load((REPO / "config.yaml").read_text())["methods"]
    paper: dict[str, int] = {}
    for path in paths:
        blocks = (yaml.safe_load(Path(path).read_text()) or {}).get("methods") or {}
        for name, block in blocks.items():
            if block and "epochs" in block:
                paper[name] = max(paper.get(name, 0), int(block["epochs"]))
    return demo, paper


def train_data(feats, rows: np.ndarray, cls, tmp: Path) -> TrainData:
    data = TrainData(
        image=torch.from_numpy(feats.image[rows]),
        text=torch.from_numpy(feats.text[rows]),
        rows=rows,
        labels=torch.from_numpy(feats.labels[rows]).float() if cls.supervised else None,
        texts=[feats.texts[i] for i in rows],
        words=feats.words.subset(rows),
        regions=feats.regions.subset(rows),
    )
    data.graph = graph_files(cls, feats, rows, tmp)
    return data


def graph_files(cls, feats, rows: np.ndarray, tmp: Path) -> dict[str, Path]:
    """The graphs a method trains on, built by the graph stage's entry point on ``rows``
    with config.yaml's graph settings (not timed: the graph stage is its own job)."""
    kinds = getattr(cls, "graphs", ())
    if not kinds:
        return {}
    from xmhash.data.splits import Split, save_split
    from xmhash.features.store import write_features
    from xmhash.graph.stage import build_graph

    features, split = tmp / "features.h5", tmp / "split.npz"
    if not features.exists():
        write_features(features, feats)
        empty = np.array([], np.int64)
        save_split(split, Split(query=empty, database=rows, train=rows, val=empty))
    graph_cfg = yaml.safe_load((REPO / "config.yaml").read_text())["graph"]
    out = {}
    for kind in kinds:
        out[kind] = tmp / f"{kind}.h5"
        if not out[kind].exists():
            build_graph(
                features=str(features),
                split=str(split),
                kind=kind,
                spec=graph_cfg[kind],
                seed=0,
                out=str(out[kind]),
                stats_out=str(tmp / f"{kind}.json"),
            )
    return out


def make(cls, block: dict, bits: int, dim: int, **override):
    params = cls.Params.from_config({**(block or {}), **override}, f"methods.{cls.name}")
    return cls(params, bits=bits, image_dim=dim, text_dim=dim, seed=0, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=sorted(METHODS))
    ap.add_argument("--n", type=int, default=5000, help="training items")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--paper-configs", nargs="*", default=sorted(glob.glob(str(REPO / "config/paper/*.yaml")))
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")

    feats = generate_demo(DemoSpec(n_items=args.n, image_dim=args.dim, text_dim=args.dim))
    rows = np.arange(args.n)
    demo, paper = method_blocks(args.paper_configs)
    peak = matmul_gflops()
    print(
        f"{args.n} training items x {args.dim}-d, {args.bits} bits, {args.threads} threads; "
        f"float32 matmul: {peak:.1f} GFLOP/s"
    )
    print(
        f"{'method':<10} {'s/epoch':>8} {'samples/s':>10} {'GFLOP/epoch':>11} {'GFLOP/s':>8} "
        f"{'of matmul':>9} {'epochs':>7} {'grid s':>8}"
    )
    total, starred = 0.0, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods:
            cls = METHODS[name]
            block = demo.get(name) or {}
            data = train_data(feats, rows, cls, Path(tmp))
            settings = TrainSettings(device="cpu", checkpoint_minutes=0)
            if issubclass(cls, ClosedFormMethod):
                t = time.perf_counter()
                fit(make(cls, block, args.bits, args.dim), data, settings)
                secs, epochs = time.perf_counter() - t, 1
                flops = float("nan")
            else:
                m = make(cls, block, args.bits, args.dim, epochs=1 + args.epochs)
                hist = fit(m, data, settings)["history"]
                secs = statistics.median(h["seconds"] for h in hist[1:])
                counter = FlopCounterMode(display=False)
                with counter:
                    fit(make(cls, block, args.bits, args.dim, epochs=1), data, settings)
                setup = FlopCounterMode(display=False)
                with setup:  # precomputation, outside the timed epochs
                    make(cls, block, args.bits, args.dim, epochs=1).setup(data)
                flops = (counter.get_total_flops() - setup.get_total_flops()) / 1e9
                epochs = paper.get(name, block.get("epochs", 1))
            grid = secs * epochs * 4
            total += grid
            rate = flops / secs if flops == flops else float("nan")
            tag = "" if name in paper or issubclass(cls, ClosedFormMethod) else "*"
            starred += [name] if tag else []
            print(
                f"{name:<10} {secs:>8.2f} {args.n / secs:>10.0f} {flops:>11.2f} {rate:>8.1f} "
                f"{rate / peak:>9.2f} {epochs:>6}{tag or ' '} {grid:>8.0f}",
                flush=True,
            )
    print(
        f"grid (methods x 4 bit lengths x 1 seed): {total / 60:.1f} min on this CPU"
        f"{'; * = demo epochs (no paper config sets them)' if starred else ''}"
    )


if __name__ == "__main__":
    main()
