"""Graph stage at NUS-WIDE scale: exact kNN graph + Leiden on 186,577 x 512 features.

    python benchmarks/graph.py                    # NUS-WIDE size (takes minutes)
    python benchmarks/graph.py --n 20000          # a quick look
    python benchmarks/graph.py --backend faiss
    python benchmarks/graph.py --vtmuch 5000      # only VTM-UCH's dense construction, n = 5,000

Synthetic features: a mixture of ``--clusters`` Gaussian clusters on the unit sphere
(CLIP-like: L2-normalised), so the graph has communities to find. Prints, per step, the
wall time and the peak resident memory of this process during the step (sampled every
20 ms from /proc), then the kNN step against a physical limit measured in the same run:
the time the 2 n^2 d multiply-adds of the exact search take at this machine's measured
matmul throughput (same block shape, same threads). Targets: < 24 GiB,
< 15 minutes in total.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _limits import PeakRSS  # benchmarks/_limits.py

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from xmhash.graph.communities import (  # noqa: E402
    community_stats,
    leiden,
    nmi,
    pseudo_centres,
    to_igraph,
)
from xmhash.graph.similarity import knn, knn_to_sparse  # noqa: E402


def synthetic(
    n: int, d: int, clusters: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = rng.integers(0, clusters, n)
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 65536):
        t = truth[start : start + 65536]
        noise = rng.standard_normal((len(t), d), dtype=np.float32) * (spread / np.sqrt(d))
        x[start : start + 65536] = centres[t] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, truth


def matmul_gflops(n: int, d: int, block: int, repeats: int = 3) -> float:
    """Measured fp32 matmul throughput for the kNN's block shape (block x d) @ (d x n)."""
    a = torch.randn(block, d)
    b = torch.randn(d, min(n, 65536))
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    dt = (time.perf_counter() - t0) / repeats
    return 2 * block * d * b.shape[1] / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=186_577)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--backend", choices=["torch", "faiss"], default="torch")
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--vtmuch",
        type=int,
        default=0,
        metavar="N",
        help="instead: VTM-UCH's dense construction on N items (paper: 5000)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XMHASH_PROGRESS", "0")

    rows: list[tuple[str, float, int, str]] = []

    def step(name, fn, note=""):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        rows.append((name, dt, mem.peak, note(out) if callable(note) else note))
        print(f"  {name}: {dt:.1f} s, peak RSS {mem.peak / 2**30:.2f} GiB", flush=True)
        return out

    if args.vtmuch:
        return vtmuch_bench(args, step, rows)
    print(
        f"graph benchmark: n={args.n:,} d={args.dim} k={args.k} block={args.block} "
        f"backend={args.backend} threads={args.threads}",
        flush=True,
    )
    x, truth = step(
        "synthetic features",
        lambda: synthetic(args.n, args.dim, args.clusters, args.spread, args.seed),
    )
    idx, sim = step("exact kNN", lambda: knn(x, args.k, block=args.block, backend=args.backend))
    adj = step(
        "sparse graph (max-symmetrised)",
        lambda: knn_to_sparse(idx, sim),
        lambda a: f"{a.nnz:,} nonzeros",
    )
    graph = step("igraph", lambda: to_igraph(adj), lambda g: f"{g.ecount():,} edges")
    part = step(
        "Leiden (modularity, seeded)",
        lambda: leiden(graph, seed=args.seed),
        lambda p: (
            f"{community_stats(p.labels)['communities']} communities, "
            f"Q={p.modularity:.3f}, NMI vs planted {nmi(p.labels, truth):.3f}"
        ),
    )
    step("pseudo-centres", lambda: pseudo_centres(x, part.labels))

    gflops = matmul_gflops(args.n, args.dim, args.block)
    knn_time = next(dt for name, dt, _, _ in rows if name == "exact kNN")
    bound = 2 * args.n**2 * args.dim / (gflops * 1e9)
    total = sum(dt for _, dt, _, _ in rows)
    peak = max(m for _, _, m, _ in rows)

    print()
    print("| step | seconds | peak RSS (GiB) | note |")
    print("| --- | ---: | ---: | --- |")
    for name, dt, mem, note in rows:
        print(f"| {name} | {dt:.1f} | {mem / 2**30:.2f} | {note} |")
    print(f"| **total** | **{total:.1f}** | **{peak / 2**30:.2f}** | targets: < 900 s, < 24 GiB |")
    print()
    print(f"matmul throughput measured here: {gflops:.1f} GFLOP/s (fp32, {args.threads} threads)")
    print(
        f"exact kNN: {knn_time:.1f} s vs the matmul bound {bound:.1f} s "
        f"(2 n^2 d flops at that rate): ratio {knn_time / bound:.2f}"
    )
    print(
        f"total {total / 60:.1f} min ({total / 900:.2f} of the 15-min target), "
        f"peak {peak / 2**30:.2f} GiB ({peak / 24 / 2**30:.2f} of 24 GiB)"
    )


def vtmuch_bench(args, step, rows) -> None:
    """VTM-UCH's S construction on N items: ~10 visions per image, ~8 words per text."""
    from xmhash.features.store import Ragged
    from xmhash.graph.vtmuch import build_vtmuch

    n, d = args.vtmuch, args.dim
    rng = np.random.default_rng(args.seed)
    print(f"VTM-UCH construction benchmark: n={n:,} d={d} threads={args.threads}", flush=True)

    def make():
        x, truth = synthetic(n, d, args.clusters, args.spread, args.seed)
        nv = rng.integers(3, 18, n)
        nw = rng.integers(3, 14, n)
        vis = np.repeat(x, nv, axis=0) + 0.5 * rng.standard_normal(
            (nv.sum(), d), dtype=np.float32
        ) / np.sqrt(d)
        words = np.repeat(x, nw, axis=0) + rng.standard_normal(
            (nw.sum(), d), dtype=np.float32
        ) / np.sqrt(d)

        def rag(e, c):
            return Ragged(
                embeddings=e.astype(np.float32),
                offsets=np.concatenate([[0], np.cumsum(c)]).astype(np.int64),
            )

        return x, truth, rag(words, nw), rag(vis, nv)

    x, truth, words, regions = step("synthetic words/regions", make)
    g = step(
        "VTM-UCH S^y, S^x, S^f, Leiden, S^c, S",
        lambda: build_vtmuch(x, words, regions, n_clusters=32, seed=args.seed),
        lambda g: (
            f"{len(np.unique(g.communities))} communities, "
            f"Q={g.partition.modularity:.3f}, NMI vs planted "
            f"{nmi(g.communities, truth):.3f}"
        ),
    )
    del g
    total = sum(dt for _, dt, _, _ in rows)
    print()
    print("| step | seconds | peak RSS (GiB) | note |")
    print("| --- | ---: | ---: | --- |")
    for name, dt, mem, note in rows:
        print(f"| {name} | {dt:.1f} | {mem / 2**30:.2f} | {note} |")
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
