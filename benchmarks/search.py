"""Search throughput and memory per backend, for 10^4..10^6 database codes at 64/128 bits.

    python benchmarks/search.py [--sizes 10000 100000 1000000] [--queries 200] [--k 10]

For each database size, code length and backend it prints queries/s, the memory the index
added (RSS delta), the code bytes scanned per second with that as a share of this machine's
memory bandwidth (a numpy copy measured in the same run: brute-force search cannot beat
reading every code once per query), the share of queries whose nearest neighbour was
found, and recall@k against exact search (a slot counts when it is within the exact k-th
distance; 1.0 for the exact backends). Database codes are random bits: the worst case for hashing backends,
whose buckets are then uniform. The queries are database items with 3 bits flipped, so
every query has a near neighbour, as in real retrieval.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil

from xmhash.search.index import BACKENDS, build_index


def bandwidth_gbs(nbytes: int = 256 << 20) -> float:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best / 1e9  # read + write


def rss() -> int:
    return psutil.Process().memory_info().rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--bits", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--backends", nargs="+", default=sorted(BACKENDS))
    args = ap.parse_args()

    bw = bandwidth_gbs()
    print(f"memory bandwidth (numpy copy): {bw:.1f} GB/s")
    print(
        f"{'n':>9} {'bits':>4} {'backend':<11} {'build s':>8} {'queries/s':>10} "
        f"{'codes MB':>8} {'RSS +MB':>8} {'scan GB/s':>9} {'of bw':>6} {'nn found':>8} "
        f"{'recall@k':>8}"
    )
    rng = np.random.default_rng(0)
    for n in args.sizes:
        for bits in args.bits:
            codes = rng.integers(0, 2, size=(n, bits), dtype=np.uint8)
            db = np.packbits(codes, axis=1)
            picks = rng.choice(n, size=args.queries, replace=False)
            q = codes[picks].copy()
            flips = rng.integers(0, bits, size=(args.queries, 3))
            np.put_along_axis(q, flips, 1 - np.take_along_axis(q, flips, axis=1), axis=1)
            q = np.packbits(q, axis=1)
            truth = None
            for backend in ["exact", *(b for b in args.backends if b != "exact")]:
                before = rss()
                t = time.perf_counter()
                index = build_index(db, bits, backend)
                build = time.perf_counter() - t
                mem = (rss() - before) / 2**20
                index.search(q[:4], args.k)  # warm up
                t = time.perf_counter()
                dist, idx = index.search(q, args.k)
                secs = time.perf_counter() - t
                if truth is None:
                    truth = dist
                # recall by distance: a slot counts when it reaches the exact k-th distance
                recall = float((dist <= truth[:, -1:]).mean())
                nn = float((dist[:, 0] == truth[:, 0]).mean())  # the planted neighbour
                scan = db.nbytes * args.queries / secs / 1e9 if index.exact else float("nan")
                print(
                    f"{n:>9} {bits:>4} {backend:<11} {build:>8.2f} {args.queries / secs:>10.0f} "
                    f"{db.nbytes / 2**20:>8.1f} {mem:>8.1f} {scan:>9.1f} {scan / bw:>6.2f} "
                    f"{nn:>8.3f} {recall:>8.3f}",
                    flush=True,
                )
                del index


if __name__ == "__main__":
    main()
