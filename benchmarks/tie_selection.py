"""Model selection on small validation splits: how often the tie rule decides the epoch.

RSHNL trains on XMedia-shaped generated data (20 single-label classes, the noise levels
of ``benchmarks/official/rshnl.py``; 2,000 training items = 7 batches of 256), and every
epoch's codes of a 500-item validation pool and a 500-item test set are kept. The pool is
cut into disjoint validation splits of 20, 100 and 500 items; on each, the epoch is
selected three ways: mAP@all under two tie rules (the fixed-seed permutations of
``tie_seed`` 0 and 1; the codes are the same) and the tie-aware mAP@all
(``training.select_metric: tie_aware``, which no tie rule moves). Printed per size:

* ``tie noise``: the share of splits whose selected epoch changes with the tie rule;
* ``tie-aware moves``: the share whose tie-aware epoch differs from tie rule 0's;
* the test mAP@all (mean of I->T and T->I, test set ranked against itself) of each
  rule's epoch, and the mean |difference| between the two tie rules' test numbers.

    python benchmarks/tie_selection.py [--seeds 0 1 2] [--epochs 30] [--noise 0.4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from xmhash import bits as B  # noqa: E402
from xmhash import metrics as M  # noqa: E402
from xmhash.data import noise  # noqa: E402
from xmhash.data.demo import DemoSpec, generate_demo  # noqa: E402
from xmhash.methods import get_method  # noqa: E402
from xmhash.methods.base import Items, TrainData  # noqa: E402
from xmhash.train import TrainSettings, fit, seed_everything  # noqa: E402

SIZES = (20, 100, 500)
TASKS = (("image", "text"), ("text", "image"))


def epoch_codes(args: argparse.Namespace, seed: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per epoch: packed codes of the validation pool and the test set; their labels."""
    n_train, n_pool, n_test = args.train, max(SIZES), 500
    f = generate_demo(
        DemoSpec(
            n_items=n_train + n_pool + n_test,
            n_labels=20,
            min_labels=1,
            max_labels=1,
            image_noise=1.5,
            text_noise=2.0,
            seed=seed,
        )
    )
    tr = np.arange(n_train)
    pool, test = np.arange(n_train, n_train + n_pool), np.arange(n_train + n_pool, len(f.labels))
    nl = noise.make_noisy(f.labels[tr], tr, "symall", args.noise, seed)
    cls = get_method("rshnl")
    hp = cls.Params.from_config({"epochs": args.epochs, "hidden": args.hidden}, "rshnl")
    seed_everything(seed)
    model = cls(hp, bits=args.bits, image_dim=f.image.shape[1], text_dim=f.text.shape[1], seed=seed)
    parts = {
        "val": Items(image=f.image[pool], text=f.text[pool]),
        "test": Items(image=f.image[test], text=f.text[test]),
    }
    kept: list[dict] = []
    end = model.on_epoch_end

    def keep(epoch: int) -> None:
        end(epoch)
        kept.append(
            {
                (part, m): B.pack(model.encode(items, m))
                for part, items in parts.items()
                for m in ("image", "text")
            }
        )

    model.on_epoch_end = keep
    data = TrainData(
        image=torch.tensor(f.image[tr]),
        text=torch.tensor(f.text[tr]),
        rows=tr,
        labels=torch.tensor(nl.labels, dtype=torch.float32),
    )
    fit(model, data, TrainSettings(device="cpu", checkpoint_minutes=0))
    return kept, f.labels[pool], f.labels[test]


def mean_map(codes: dict, part: str, rows, labels, bits: int, key: str, tie_seed: int) -> float:
    return float(
        np.mean(
            [
                M.evaluate(
                    codes[(part, a)][rows],
                    codes[(part, b)][rows],
                    labels,
                    labels,
                    bits,
                    ks=(),
                    pn=(),
                    tie_seed=tie_seed,
                )[key]
                for a, b in TASKS
            ]
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.4, help="symall noise rate")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("XMHASH_PROGRESS", "0")
    torch.set_num_threads(args.threads)

    rows = {n: [] for n in SIZES}
    for seed in args.seeds:
        kept, val_labels, test_labels = epoch_codes(args, seed)
        everything = np.arange(len(test_labels))
        test = [mean_map(c, "test", everything, test_labels, args.bits, "map@all", 0) for c in kept]
        for n in SIZES:
            for start in range(0, len(val_labels) - n + 1, n):
                sub = np.arange(start, start + n)
                lab = val_labels[sub]
                e0, e1, et = (
                    int(np.argmax([mean_map(c, "val", sub, lab, args.bits, key, t) for c in kept]))
                    for key, t in (("map@all", 0), ("map@all", 1), ("map@all_tie_aware", 0))
                )
                rows[n].append((e0, e1, et, test[e0], test[e1], test[et]))
    print(
        f"RSHNL, XMedia-shaped generated data: {args.train} training items, symall "
        f"{args.noise}, {args.bits} bits, {args.epochs} epochs, hidden {args.hidden}, "
        f"seeds {args.seeds}, {args.threads} thread(s)\n"
    )
    print(
        "| validation items | splits | tie noise (rule 0 vs 1) | tie-aware moves the epoch "
        "| test mAP rule 0 | test mAP rule 1 | test mAP tie-aware | mean |rule 0 - rule 1| |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in SIZES:
        r = np.asarray(rows[n], np.float64)
        print(
            f"| {n} | {len(r)} | {np.mean(r[:, 0] != r[:, 1]):.0%} | "
            f"{np.mean(r[:, 2] != r[:, 0]):.0%} | {r[:, 3].mean():.4f} | {r[:, 4].mean():.4f} | "
            f"{r[:, 5].mean():.4f} | {np.abs(r[:, 3] - r[:, 4]).mean():.4f} |"
        )
    print("\nThe tie-aware mAP does not depend on the tie rule: its tie noise is 0 by definition.")


if __name__ == "__main__":
    main()
