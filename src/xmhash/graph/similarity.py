"""Exact kNN graphs (array in, array out) and the dense-matrix limit.

Nothing here materialises an N x M similarity matrix above ``max_dense`` entries: the
kNN search walks the rows in blocks and keeps only a running top k per row, so memory is
O(block x N + N x k). Each pair's similarity is computed once (block i against the rows
from i on; the strip updates the top k of both sides), which halves the n^2 d
multiply-adds of an exact search. Torch does the matrix products (on the GPU when
``device`` is CUDA, in fp16 there if asked); faiss (``IndexFlatIP``, exact) is an
optional backend for large CPU runs.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from xmhash.log import progress

log = logging.getLogger(__name__)

DEFAULT_MAX_DENSE = 20_000 * 20_000  # entries of the largest dense matrix allowed


class DenseTooLargeError(MemoryError):
    """A dense N x M matrix was requested above the configured limit."""


def check_dense(
    n: int,
    m: int,
    max_dense: int,
    what: str = "similarity matrix",
    fix: str = "use the kNN/sparse form (graph.knn) or raise graph.max_dense",
) -> None:
    """Refuse a dense n x m ``what`` above ``max_dense`` entries; the message ends with
    ``fix``."""
    if n * m > max_dense:
        raise DenseTooLargeError(
            f"a dense {n} x {m} {what} ({n * m:,} entries) exceeds "
            f"graph.max_dense={max_dense:,}; {fix}"
        )


def _as_tensor(
    x: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"expected a 2-d (n, D) feature array, got shape {tuple(t.shape)}")
    t = t.to(dtype=torch.float32)
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    return t.to(dtype)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def compute_dtype(device: torch.device, half: bool) -> torch.dtype:
    """fp16 only on CUDA (CPU half matmuls are slow and inexact); fp32 otherwise."""
    return torch.float16 if half and device.type == "cuda" else torch.float32


def knn(
    x: np.ndarray | torch.Tensor,
    k: int,
    *,
    block: int = 4096,
    device: str | torch.device = "cpu",
    half: bool = False,
    backend: str = "torch",
    exclude_self: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN of every row of ``x`` among the rows of ``x``.

    Returns ``(indices, similarities)``, both (n, k), neighbours sorted by decreasing
    similarity; with ``exclude_self`` an item is never its own neighbour.
    """
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
    if backend == "faiss":
        return _knn_faiss(np.asarray(x, np.float32), k, exclude_self)
    if backend != "torch":
        raise ValueError(f"unknown kNN backend {backend!r}; expected 'torch' or 'faiss'")
    device = torch.device(device)
    t = l2_normalize(_as_tensor(x, device, torch.float32)).to(compute_dtype(device, half))
    return _knn_symmetric(t, k, block, exclude_self)


def _merge(
    best_v: torch.Tensor, best_i: torch.Tensor, vals: torch.Tensor, ids: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    v, pos = torch.topk(torch.cat([best_v, vals], dim=1), k, dim=1)
    return v, torch.gather(torch.cat([best_i, ids], dim=1), 1, pos)


def _knn_symmetric(
    t: torch.Tensor, k: int, block: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN computing each pair's similarity once: block i multiplies only the rows
    from i on (the upper strip, half the n^2 d flops); the strip updates the top k of
    block i's rows (along rows) and of the later rows (along columns)."""
    n, device = len(t), t.device
    best_v = torch.full((n, k), -float("inf"), device=device)
    best_i = torch.full((n, k), -1, dtype=torch.long, device=device)
    for start in progress(range(0, n, block), desc="kNN", total=-(-n // block), unit="block"):
        stop = min(start + block, n)
        s = (t[start:stop] @ t[start:].T).float()  # (b, n - start)
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            s[rows, rows] = -float("inf")
        kr = min(k, s.shape[1])
        v, i = torch.topk(s, kr, dim=1)
        best_v[start:stop], best_i[start:stop] = _merge(
            best_v[start:stop], best_i[start:stop], v, i + start, k
        )
        if stop < n:  # the later rows see block i's items through the transposed strip
            kc = min(k, stop - start)
            v, i = torch.topk(s[:, stop - start :], kc, dim=0)  # (kc, n - stop)
            best_v[stop:], best_i[stop:] = _merge(best_v[stop:], best_i[stop:], v.T, i.T + start, k)
    return best_i.cpu().numpy(), best_v.cpu().numpy()


def _knn_faiss(x: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "graph.knn.backend: faiss needs faiss-cpu (pip install 'xmhash[faiss]')"
        ) from e
    x = np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sim, idx = index.search(x, k + 1 if exclude_self else k)
    if not exclude_self:
        return idx.astype(np.int64), sim.astype(np.float32)
    # drop the item itself wherever it appears (ties can move it off position 0)
    self_hit = idx == np.arange(len(x))[:, None]
    keep = ~self_hit
    keep[~self_hit.any(axis=1), -1] = False
    return (
        idx[keep].reshape(len(x), k).astype(np.int64),
        sim[keep].reshape(len(x), k).astype(np.float32),
    )


def knn_to_sparse(
    idx: np.ndarray,
    sim: np.ndarray | None = None,
    *,
    symmetrize: str = "max",
    min_weight: float | None = None,
) -> sp.csr_matrix:
    """The kNN lists as an (n, n) sparse matrix.

    ``symmetrize``: ``max`` (i~j if either lists the other; weight = the larger),
    ``mutual`` (only pairs that list each other) or ``none`` (directed). Weights are the
    similarities (1 when ``sim`` is None); ``min_weight`` drops weaker edges.
    """
    n, k = idx.shape
    w = np.ones(idx.shape, np.float32) if sim is None else np.asarray(sim, np.float32)
    rows = np.repeat(np.arange(n), k)
    a = sp.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(n, n))
    if min_weight is not None:
        a.data[a.data < min_weight] = 0
        a.eliminate_zeros()
    if symmetrize == "none":
        return a
    if symmetrize == "max":
        return a.maximum(a.T).tocsr()
    if symmetrize == "mutual":
        return a.minimum(a.T).tocsr()
    raise ValueError(f"symmetrize must be 'max', 'mutual' or 'none', got {symmetrize!r}")
