"""Hamming search over packed codes: exact XOR + popcount, or a faiss binary index.

Every backend returns ``(distances, indices)``, each ``(n_queries, k)``, sorted by
distance and then by database index, so results are canonical: the exact backend and
faiss' exact ``IndexBinaryFlat`` return the same distances, and the same items except, at
most, which of several items tied at the k-th distance make the cut. The hashing
backends (``faiss-hash``, ``faiss-mih``) probe buckets within a Hamming radius and can miss
items; missing slots have index -1 and distance ``bits + 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xmhash.metrics import as_words


class SearchIndex:
    """Base class: ``add`` packed (n, ceil(bits/8)) uint8 codes once, then ``search``."""

    exact = True

    def __init__(self, codes: np.ndarray, bits: int):
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != (bits + 7) // 8:
            raise ValueError(
                f"database codes have shape {codes.shape}, expected "
                f"(n, {(bits + 7) // 8}) packed uint8 for {bits} bits"
            )
        self.bits, self.size = bits, len(codes)
        self._build(codes)

    def _build(self, codes: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        if queries.ndim != 2 or queries.shape[1] != (self.bits + 7) // 8:
            raise ValueError(
                f"query codes have shape {queries.shape}, expected "
                f"(n, {(self.bits + 7) // 8}) for the index's {self.bits} bits"
            )
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, self.size)
        dist, idx = self._search(queries, k)
        dist = np.where(idx < 0, self.bits + 1, dist).astype(np.int32)
        order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), dist), axis=1)
        return (
            np.take_along_axis(dist, order, axis=1),
            np.take_along_axis(idx.astype(np.int64), order, axis=1),
        )


class ExactIndex(SearchIndex):
    """Brute force, one query at a time: popcount(query XOR item) over the database held
    as uint64 words in word-major order (one contiguous row per word, so every pass streams
    memory), then the k-th smallest distance from a histogram of the distances (they are
    small integers) and the top k among the few items at or below it."""

    def _build(self, codes: np.ndarray) -> None:
        self.words = np.ascontiguousarray(as_words(codes).T)  # (n_words, n)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = as_words(queries)
        n = self.size
        xor, count = np.empty(n, np.uint64), np.empty(n, np.uint8)
        d = np.empty(n, np.uint16)
        dist = np.empty((len(q), k), np.int32)
        idx = np.empty((len(q), k), np.int64)
        for i, qw in enumerate(q):
            for w, column in enumerate(self.words):
                np.bitwise_xor(column, qw[w], out=xor)
                np.bitwise_count(xor, out=count)
                if w:
                    np.add(d, count, out=d)
                else:
                    d[:] = count
            kth = np.searchsorted(np.cumsum(np.bincount(d, minlength=self.bits + 1)), k)
            near = np.flatnonzero(d <= kth)
            near = near[np.argsort(d[near], kind="stable")[:k]]  # ties by database index
            idx[i], dist[i] = near, d[near]
        return dist, idx


class _FaissIndex(SearchIndex):
    def _make(self, faiss):
        raise NotImplementedError

    def _build(self, codes: np.ndarray) -> None:
        try:
            import faiss
        except ImportError:
            raise ImportError(
                "faiss backends need faiss-cpu: pip install 'xmhash[faiss]'"
            ) from None
        if self.bits % 8:
            raise ValueError(f"faiss binary indexes need a multiple of 8 bits, got {self.bits}")
        self.index = self._make(faiss)
        self.index.add(codes)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)


class FaissFlatIndex(_FaissIndex):
    """faiss ``IndexBinaryFlat``: exact, multithreaded brute force."""

    def _make(self, faiss):
        return faiss.IndexBinaryFlat(self.bits)


class FaissHashIndex(_FaissIndex):
    """faiss ``IndexBinaryHash``: one hash table on the first ``b`` bits, probing buckets
    within ``nflip`` bit flips. Approximate; fast for large databases at small radii."""

    exact = False

    def __init__(self, codes: np.ndarray, bits: int, b: int = 0, nflip: int = 2):
        self.b, self.nflip = b, nflip
        super().__init__(codes, bits)

    def _make(self, faiss):
        b = self.b or min(24, max(8, int(np.log2(max(self.size, 2)))))
        index = faiss.IndexBinaryHash(self.bits, b)
        index.nflip = self.nflip
        return index


class FaissMultiHashIndex(_FaissIndex):
    """faiss ``IndexBinaryMultiHash``: multi-index hashing, ``nhash`` tables on disjoint
    substrings of ``b`` bits each; an item is a candidate when one substring is within
    ``nflip`` flips. Approximate, with a much higher recall than one table."""

    exact = False

    def __init__(self, codes: np.ndarray, bits: int, nhash: int = 0, nflip: int = 1):
        self.nhash, self.nflip = nhash, nflip
        super().__init__(codes, bits)

    def _make(self, faiss):
        nhash = self.nhash or max(2, self.bits // 16)
        b = min(24, self.bits // nhash)
        index = faiss.IndexBinaryMultiHash(self.bits, nhash, b)
        index.nflip = self.nflip
        return index


BACKENDS: dict[str, Callable[..., SearchIndex]] = {
    "exact": ExactIndex,
    "faiss-flat": FaissFlatIndex,
    "faiss-hash": FaissHashIndex,
    "faiss-mih": FaissMultiHashIndex,
}


def build_index(codes: np.ndarray, bits: int, backend: str = "exact", **options) -> SearchIndex:
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"unknown search backend {backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    return cls(codes, bits, **options)
