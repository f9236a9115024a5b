"""Evaluation speed: the vectorised metrics against a plain per-query argsort loop.

2,000 queries x 18,015 database items (the MIRFlickr protocol), 16-128 bits, real
MIRFlickr labels when a MIRFlickr metadata folder is given (random labels otherwise). The loop is
what research repos do: per query, Hamming distances from the ±1 inner product, a sort,
and AP from the ranked relevance. Both use the same tie rule, so they must agree exactly
on mAP@all; the script checks that and prints the speed-up.

    python benchmarks/evaluation.py [--queries 2000] [--database 18015] [--bits 16 32 64 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from xmhash import bits as B  # noqa: E402
from xmhash import metrics as M  # noqa: E402


def load_labels(n: int, seed: int) -> tuple[np.ndarray, str]:
    shared = Path(os.environ.get("XMHASH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    path = shared / "data/mirflickr25k-meta/all_labels.txt"
    rng = np.random.default_rng(seed)
    if path.exists():
        labels = np.loadtxt(path, dtype=np.uint8)
        return labels[rng.permutation(len(labels))[:n]], "MIRFlickr-25K labels"
    return (rng.random((n, 24)) < 0.15).astype(np.uint8), "random labels (24, p=0.15)"


def loop_map(
    q: np.ndarray, db: np.ndarray, ql: np.ndarray, dl: np.ndarray, bits: int, tie_rank: np.ndarray
) -> float:
    """The plain per-query loop (±1 codes, one sort per query)."""
    aps = []
    for i in range(len(q)):
        dist = 0.5 * (bits - db @ q[i])
        order = np.lexsort((tie_rank, dist))
        rel = (dl[order] @ ql[i]) > 0
        r = rel.sum()
        if r == 0:
            continue
        hits = np.cumsum(rel)
        aps.append(float((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / r))
    return float(np.mean(aps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--database", type=int, default=18015)
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64, 128])
    args = ap.parse_args()
    labels, source = load_labels(args.queries + args.database, 0)
    ql, dl = labels[: args.queries], labels[args.queries :]
    print(
        f"{args.queries} queries x {args.database} database items, {source}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'bits':>5} {'vectorised s':>13} {'loop s':>8} {'speed-up':>9} "
        f"{'mAP@all':>9} {'loop mAP':>9} {'same':>5}"
    )
    for nbits in args.bits:
        rng = np.random.default_rng(nbits)
        # codes correlated with the labels, so the ranking is not random
        proj = rng.standard_normal((labels.shape[1], nbits))
        codes = B.binarize(labels @ proj + 1.5 * rng.standard_normal((len(labels), nbits)))
        qc, dc = codes[: args.queries], codes[args.queries :]
        t = time.perf_counter()
        res = M.evaluate(B.pack(qc), B.pack(dc), ql, dl, nbits, ks=(50,), pn=(100,))
        fast = time.perf_counter() - t
        t = time.perf_counter()
        ref = loop_map(
            qc.astype(np.float32),
            dc.astype(np.float32),
            ql.astype(np.float32),
            dl.astype(np.float32),
            nbits,
            M.tie_permutation(args.database, 0),
        )
        slow = time.perf_counter() - t
        same = abs(ref - res["map@all"]) < 1e-9
        print(
            f"{nbits:>5} {fast:>13.2f} {slow:>8.2f} {slow / fast:>8.1f}x "
            f"{res['map@all']:>9.5f} {ref:>9.5f} {str(same):>5}"
        )
        if not same:
            raise SystemExit(f"mAP differs at {nbits} bits: {res['map@all']} vs {ref}")


if __name__ == "__main__":
    main()
