"""Physical limits and resource meters measured in the same run as a benchmark.

* :func:`matmul_gflops`: the GFLOP/s of a plain square matmul on this device, at the
  precision settings in force (the practical peak a benchmark's rate is a share of);
* :class:`PeakRSS`: peak resident memory of this process while a block runs (CPU);
* :class:`PeakMemory`: peak memory of a block on a device (RSS on CPU, the caching
  allocator's ``max_memory_allocated`` on CUDA);
* :func:`device_seconds`: the GPU's kernel and copy time of a call (torch.profiler),
  against which a wall time gives the share of time the GPU was busy.
"""

from __future__ import annotations

import os
import threading
import time

import torch

PAGE = os.sysconf("SC_PAGE_SIZE")


def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued device work (a no-op on CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    n: int = 1024,
    reps: int = 10,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> float:
    """GFLOP/s of a plain n x n matmul: float32 on torch's current threads by default;
    on CUDA at the current TF32 setting (``torch.backends.cuda.matmul.allow_tf32``)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRSS:
    """Peak resident set size while the block runs (a sampling thread, every 20 ms)."""

    def __enter__(self):
        self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


class PeakMemory:
    """Peak memory of the block in bytes (``.peak``) and what it measured (``.kind``):
    ``rss`` (the whole process, on CPU) or ``cuda`` (tensors allocated on the device)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.kind = "cuda" if self.device.type == "cuda" else "rss"
        self.peak = 0

    def __enter__(self):
        if self.kind == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss = PeakRSS().__enter__()
        return self

    def __exit__(self, *exc):
        if self.kind == "cuda":
            sync(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._rss.__exit__(*exc)
            self.peak = self._rss.peak


def device_seconds(fn, device: torch.device | str) -> tuple[float, float]:
    """(wall seconds, seconds of GPU kernels and copies) of ``fn()`` on a CUDA device,
    from torch.profiler's device activity (no CPU-op recording, so little overhead)."""
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - t
    busy_us = 0.0
    for evt in prof.key_averages():
        busy_us += getattr(evt, "self_device_time_total", None) or getattr(
            evt, "self_cuda_time_total", 0.0
        )
    return wall, busy_us / 1e6
