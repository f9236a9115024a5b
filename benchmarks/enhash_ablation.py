"""ENHash ablation on a demo: mAP@all of the four switch combinations, 16/32/64 bits.

ENHash is a RECONSTRUCTION (no paper text or code is public; see
src/xmhash/methods/enhash.py). The variants are the overlays in
config/ablation/enhash/ (base, memory, notebook) and the full method, applied to the
``methods.enhash`` block of config.yaml, on the demo dataset and split of config.yaml
(or of a demo overlay, ``--dataset config/demo/finegrained.yaml``), trained by the same
``xmhash.train.fit`` the train stage runs. Printed per variant and code length: mAP@all
I->T, T->I and their mean (query set vs database; mean ± std over the seeds), the
training seconds, and, as the floors, LSH and the expected mAP of random codes.

    python benchmarks/enhash_ablation.py [--dataset config/demo/finegrained.yaml]
        [--bits 16 32 64] [--seeds 0 1 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _demo_runs import REPO, add_common_arguments, mean_std, start, train_and_score  # noqa: E402

from xmhash import metrics as M  # noqa: E402
from xmhash.data.splits import make_split  # noqa: E402

VARIANTS = ("base", "memory", "notebook", "full")


def variant_params(name: str) -> dict:
    """methods.enhash of config.yaml with the variant's overlay applied."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["methods"]["enhash"]
    if name != "full":
        path = REPO / "config/ablation/enhash" / f"{name}.yaml"
        cfg.update(yaml.safe_load(path.read_text())["methods"]["enhash"])
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(ap)
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args()
    cfg, name, feats, split_cfg = start(args)
    print(
        f"{name}: {len(feats.image)} items, split {split_cfg}, seeds {args.seeds}, "
        f"{args.threads} threads, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'variant':>9} {'bits':>5} {'I->T':>16} {'T->I':>16} {'mean':>16} {'train s':>8}")
    for bits in args.bits:
        rows: dict[str, list[tuple[float, float, float]]] = {}
        chance = []
        for seed in args.seeds:
            split = make_split(len(feats.image), seed=seed, **split_cfg)
            chance.append(
                M.expected_random_map(feats.labels[split.query], feats.labels[split.database])
            )
            rows.setdefault("lsh", []).append(
                train_and_score("lsh", cfg["methods"]["lsh"], bits, seed, feats, split)
            )
            for variant in args.variants:
                rows.setdefault(variant, []).append(
                    train_and_score("enhash", variant_params(variant), bits, seed, feats, split)
                )
        print(f"{'chance':>9} {bits:>5} {'':>16} {'':>16} {np.mean(chance):>16.4f}")
        for variant, res in rows.items():
            r = np.asarray(res)
            print(
                f"{variant:>9} {bits:>5} {mean_std(r[:, 0]):>16} {mean_std(r[:, 1]):>16} "
                f"{mean_std(r[:, :2].mean(1)):>16} {r[:, 2].mean():>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
