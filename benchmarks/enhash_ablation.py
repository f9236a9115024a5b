"""ENHash ablation on the demo: mAP@all of the four switch combinations, 16/32/64 bits.

ENHash is a RECONSTRUCTION (no paper text or code is public; see
src/xmhash/methods/enhash.py). The variants are the overlays in
config/ablation/enhash/ (base, memory, notebook) and the full method, applied to the
``methods.enhash`` block of config.yaml, on the demo dataset and split of config.yaml,
trained by the same ``xmhash.train.fit`` the train stage runs. Printed per variant and
code length: mAP@all I->T, T->I and their mean (query set vs database), the training
seconds, and, as the floors, LSH and the expected mAP of random codes.

    python benchmarks/enhash_ablation.py [--bits 16 32 64] [--seeds 0] [--threads 2]
"""

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
from xmhash import metrics as M  # noqa: E402
from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.data.splits import make_split  # noqa: E402
from xmhash.methods import get_method  # noqa: E402
from xmhash.methods.base import Items, TrainData  # noqa: E402
from xmhash.train import TrainSettings, cross_modal_map, fit, seed_everything  # noqa: E402

VARIANTS = ("base", "memory", "notebook", "full")


def variant_params(name: str) -> dict:
    """methods.enhash of config.yaml with the variant's overlay applied."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["methods"]["enhash"]
    if name != "full":
        path = REPO / "config/ablation/enhash" / f"{name}.yaml"
        cfg.update(yaml.safe_load(path.read_text())["methods"]["enhash"])
    return cfg


def run(
    method: str, params: dict, bits: int, seed: int, feats, split
) -> tuple[float, float, float]:
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
        image=torch.tensor(feats.image[rows]), text=torch.tensor(feats.text[rows]), rows=rows
    )
    t = time.perf_counter()
    fit(model, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    seconds = time.perf_counter() - t
    q = Items(image=feats.image[split.query], text=feats.text[split.query])
    d = Items(image=feats.image[split.database], text=feats.text[split.database])
    maps = cross_modal_map(model, q, feats.labels[split.query], d, feats.labels[split.database])
    return maps["i2t"], maps["t2i"], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=1)  # the train rule runs 1 thread
    args = ap.parse_args()
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = config["datasets"]["demo"]
    feats = generate_demo(DemoSpec(**demo.get("demo", {})))
    split_cfg = {k: v for k, v in demo["split"].items() if k != "official"}
    print(
        f"demo: {len(feats.image)} items, split {split_cfg}, seeds {args.seeds}, "
        f"{args.threads} threads, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'variant':>9} {'bits':>5} {'I->T':>7} {'T->I':>7} {'mean':>7} {'± seeds':>8} "
        f"{'train s':>8}"
    )
    for bits in args.bits:
        rows: dict[str, list[tuple[float, float, float]]] = {}
        chance = []
        for seed in args.seeds:
            split = make_split(len(feats.image), seed=seed, **split_cfg)
            chance.append(
                M.expected_random_map(feats.labels[split.query], feats.labels[split.database])
            )
            rows.setdefault("lsh", []).append(
                run("lsh", config["methods"]["lsh"], bits, seed, feats, split)
            )
            for name in args.variants:
                rows.setdefault(name, []).append(
                    run("enhash", variant_params(name), bits, seed, feats, split)
                )
        print(f"{'chance':>9} {bits:>5} {'':>7} {'':>7} {np.mean(chance):>7.4f}")
        for name, res in rows.items():
            r = np.asarray(res)
            means = r[:, :2].mean(1)
            print(
                f"{name:>9} {bits:>5} {r[:, 0].mean():>7.4f} {r[:, 1].mean():>7.4f} "
                f"{means.mean():>7.4f} {means.std():>8.4f} {r[:, 2].mean():>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
