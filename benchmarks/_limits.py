"""Physical limits measured in the same run as a benchmark, to print ratios against."""

from __future__ import annotations

import time

import torch


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """float32 GFLOP/s of a plain n x n matmul on torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
