"""mAP@all of every method on a built-in demo of config.yaml, per direction, bits and seed.

Each method trains with config.yaml's ``methods.<name>`` block (updated by
``method_overrides.<dataset>.<name>``) on the demo's training
split of each seed (split seed = training seed, as in the workflow) and is scored on the
query split against the database split (mAP@all, I->T and T->I). The table shows the mean
over seeds, one cell per direction and code length, and the chance floor (the expected
mAP of a random ranking). Methods that need a graph or an encoder (VTM-UCH) are skipped.

    python benchmarks/demo_quality.py --dataset demo_bow [--bits 16 32 64] [--seeds 0 1 2]
        [--methods lsh cirh ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _demo_runs import train_and_score  # noqa: E402

from xmhash import metrics  # noqa: E402
from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.data.splits import make_split  # noqa: E402
from xmhash.methods import METHODS, get_method  # noqa: E402
from xmhash.methods.base import DeepMethod  # noqa: E402
from xmhash.plan import method_config  # noqa: E402


def default_methods() -> list[str]:
    return [
        name
        for name, cls in METHODS.items()
        if not cls.supervised and not cls.needs & {"graph", "encoder"}
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    ds = config["datasets"][args.dataset]
    feats = generate_demo(DemoSpec(**ds.get("demo", {})))
    sizes = {k: ds["split"][k] for k in ("query", "train", "val")}
    methods = args.methods or default_methods()
    rows: dict[str, dict[tuple[str, int], list[float]]] = {}
    chance = []
    for seed in args.seeds:
        sp = make_split(len(feats), seed=seed, **sizes)
        chance.append(
            metrics.expected_random_map(feats.labels[sp.query], feats.labels[sp.database])
        )
        for name in methods:
            params = method_config(config, args.dataset, name)
            kind = "deep" if issubclass(get_method(name), DeepMethod) else "closed"
            for b in args.bits:
                try:
                    i2t, t2i, seconds = train_and_score(name, params, b, seed, feats, sp)
                except Exception as exc:  # a failing method is a table cell, not a crash
                    print(f"{name} {b} bits seed {seed}: {type(exc).__name__}: {exc}")
                    continue
                for task, v in (("i2t", i2t), ("t2i", t2i)):
                    rows.setdefault(name, {}).setdefault((task, b), []).append(v)
                print(
                    f"{name} {b} bits seed {seed} ({kind}, {seconds:.0f} s): "
                    f"i2t {i2t:.3f} t2i {t2i:.3f}",
                    flush=True,
                )
    print(f"\n{args.dataset}: mAP@all, mean over seeds {args.seeds}; chance {np.mean(chance):.3f}")
    head = " / ".join(str(b) for b in args.bits)
    print(f"| method | I->T {head} | T->I {head} |\n|---|---|---|")
    for name, cells in rows.items():
        cols = [
            " / ".join(
                f"{np.mean(cells[(t, b)]):.3f}" if (t, b) in cells else "-" for b in args.bits
            )
            for t in ("i2t", "t2i")
        ]
        print(f"| {name} | {cols[0]} | {cols[1]} |")


if __name__ == "__main__":
    main()
