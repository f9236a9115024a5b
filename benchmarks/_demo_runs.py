"""Training and scoring one method on a demo in one process, for the benchmarks that
compare methods or variants (the train stage's ``fit``, the evaluator's mAP@all)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from xmhash.data.demo_variants import generate  # noqa: E402
from xmhash.methods import get_method  # noqa: E402
from xmhash.methods.base import Items, TrainData  # noqa: E402
from xmhash.train import TrainSettings, cross_modal_map, fit, seed_everything  # noqa: E402


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merge(base[key], value) if both else value
    return out


def config(*overlays: Path) -> dict:
    """config.yaml with the overlays merged in, dictionaries recursively, as snakemake's
    ``--configfile`` merges them."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in overlays:
        cfg = _merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return cfg


def demo_dataset(cfg: dict):
    """(name, features, split settings) of the first dataset of ``run.datasets``."""
    name = cfg["run"]["datasets"][0]
    block = cfg["datasets"][name]
    if block["source"] != "demo":
        raise SystemExit(f"{name}: the benchmark runs on the built-in demos only")
    split = {k: v for k, v in block["split"].items() if k != "official"}
    return name, generate(block.get("demo", {})), split


def add_common_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dataset", type=Path, help="a demo overlay, e.g. config/demo/words.yaml")
    ap.add_argument("--threads", type=int, default=1)  # the train rule runs 1 thread


def start(args: argparse.Namespace):
    """Quiet progress bars, set the threads, and load (config, name, features, split
    settings) of ``args.dataset`` (config.yaml's demo when unset)."""
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    cfg = config(*([args.dataset] if args.dataset else []))
    return (cfg, *demo_dataset(cfg))


def train_and_score(
    method: str,
    params: dict,
    bits: int,
    seed: int,
    feats,
    split,
    graph: dict[str, Path] | None = None,
) -> tuple[float, float, float]:
    """(mAP@all I->T, T->I, training seconds) of one training run: query set vs
    database, the method trained on the split's training rows."""
    cls = get_method(method)
    seed_everything(seed)
    model = cls(
        cls.Params.from_config(params, f"methods.{method}"),
        bits=bits,
        image_dim=feats.image.shape[1],
        text_dim=feats.text.shape[1],
        seed=seed,
    )
    rows = split.train
    data = TrainData(
        image=torch.tensor(feats.image[rows]),
        text=torch.tensor(feats.text[rows]),
        rows=rows,
        graph=dict(graph or {}),
    )
    t = time.perf_counter()
    fit(model, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    seconds = time.perf_counter() - t
    q = Items(image=feats.image[split.query], text=feats.text[split.query])
    d = Items(image=feats.image[split.database], text=feats.text[split.database])
    maps = cross_modal_map(model, q, feats.labels[split.query], d, feats.labels[split.database])
    return maps["i2t"], maps["t2i"], seconds


def mean_std(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.4f} ± {v.std():.4f}"
