"""Retrieval metrics for Hamming ranking: one protocol, documented, pure numpy.

Protocol (the recommended canonical one, docs/official.md); :func:`protocol` returns it as a
dict that every ``metrics.json`` records.

* **Binarisation**: b = +1 where x >= 0, else -1 (never ``sign``, whose sign(0) = 0
  produces half-integer distances).
* **Distance**: popcount(xor) of packed bits, an integer in 0..c.
* **Relevance**: query and item share at least one label (label dot product > 0).
* **Ranking (deterministic tie rule)**: by (distance, position of the item in a
  fixed-seed permutation of the database). Ties are broken at random but reproducibly,
  which is unbiased even when the database file is ordered by class.
* **Tie-aware AP**: the expectation of AP over all orderings within tie blocks
  (McSherry & Najork 2008), in closed form per block; it does not depend on any tie rule.
* **mAP@all**: AP = (1/R) sum_{relevant ranks k} P@k; queries with R = 0 are left out of
  the mean (the count is recorded).
* **mAP@K**, three named definitions:

  - ``map@K``: standard AP@K = (1/min(R, K)) sum_{k<=K} rel_k P@k; mean over queries
    with R > 0;
  - ``map@K_djsrh``: DJSRH's ``calculate_top_map``, used by DJSRH/JDSH/UCMFH/CIRH/DGCPN:
    (1/h) sum_{k<=K} rel_k P@k with h the hits inside the top K, AP = 0 when h = 0;
    mean over **all** queries;
  - ``map@K_dcmh``: the DCMH lineage's ``calc_map_k`` (DGCPN, VTM-UCH): precision at the
    ranks of the first min(K, R) relevant items wherever they are ranked; mean over all
    queries (R = 0 counts 0).

  K larger than the database is clipped to the database size.
* **P@N**: hits in the top N / N, mean over all queries.
* **PR by Hamming radius** r = 0..c: for each query, precision(r) = relevant within
  radius r / items within radius r, recall(r) = relevant within r / R. Recall is averaged
  over queries with R > 0; precision over queries with R > 0 and a non-empty retrieval
  at radius r (an empty retrieval has no precision); ``coverage(r)`` is the share of
  queries whose retrieval at radius r is non-empty.

All functions take packed uint8 codes (see :mod:`xmhash.codes`) and label matrices, and
work in query blocks so that memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from xmhash.bits import pack

TIE_RULE = "distance, then position in a fixed-seed random permutation of the database"


def protocol(ks: Sequence[int], pn: Sequence[int], tie_seed: int) -> dict:
    return {
        "binarisation": "x >= 0 -> 1, else 0 (packed bits)",
        "distance": "Hamming, popcount(xor)",
        "relevance": "share >= 1 label",
        "tie_rule": TIE_RULE,
        "tie_seed": tie_seed,
        "tie_aware": "map@all_tie_aware = expected AP over orderings within tie blocks",
        "zero_relevant_queries": {
            "map@all": "left out of the mean",
            "map@K": "left out of the mean",
            "map@K_djsrh": "count as 0",
            "map@K_dcmh": "count as 0",
            "p@N": "count as 0",
        },
        "map_at_k": {
            "map@K": "standard AP@K, 1/min(R,K)",
            "map@K_djsrh": "DJSRH calculate_top_map, 1/hits in top K",
            "map@K_dcmh": "DCMH calc_map_k, first min(K,R) relevant items",
        },
        "k": list(ks),
        "p_at_n": list(pn),
        "pr": "by Hamming radius; precision over queries with non-empty retrieval",
    }


# --------------------------------------------------------------------------- distances


def as_words(packed: np.ndarray) -> np.ndarray:
    """View packed bytes as uint64 words (zero-padded), for a fast popcount."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((len(packed), pad), np.uint8)], axis=1)
    return packed.view(np.uint64)


def hamming(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances (nq, ndb) uint16 between packed codes, by popcount(xor)."""
    if query.shape[1] != database.shape[1]:
        raise ValueError(f"code widths differ: {query.shape[1]} vs {database.shape[1]} bytes")
    q, db = as_words(query), as_words(database)
    out = np.zeros((len(q), len(db)), np.uint16)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, w : w + 1] ^ db[None, :, w]).astype(np.uint16)
    return out


def relevance(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """(nq, ndb) bool: query and item share at least one label."""
    return (q_labels.astype(np.float32) @ db_labels.astype(np.float32).T) > 0


# --------------------------------------------------------------------------- ranking


def tie_permutation(n_database: int, seed: int) -> np.ndarray:
    """Rank of each database item in the fixed-seed tie-breaking permutation."""
    perm = np.random.default_rng(seed).permutation(n_database)
    rank = np.empty(n_database, np.int64)
    rank[perm] = np.arange(n_database)
    return rank


def rank_order(dist: np.ndarray, tie_rank: np.ndarray) -> np.ndarray:
    """Database indices sorted by (distance, tie_rank), one row per query.

    Columns are first put in tie-permutation order, then stably sorted by distance
    (a radix sort for uint16 keys), so the result is exact and fast.
    """
    perm = np.argsort(tie_rank)
    order = np.argsort(dist[:, perm], axis=1, kind="stable")
    return perm[order]


@dataclass
class _Block:
    """Per-query results of one query block, combined by :func:`evaluate`."""

    ap_all: np.ndarray
    ap_tie: np.ndarray
    n_rel: np.ndarray
    ap_k: dict[str, np.ndarray] = field(default_factory=dict)
    p_n: dict[int, np.ndarray] = field(default_factory=dict)
    pr_retrieved: np.ndarray | None = None  # (b, c+1): items within radius r
    pr_relevant: np.ndarray | None = None  # (b, c+1): relevant items within radius r


def _harmonic(n: int) -> np.ndarray:
    h = np.zeros(n + 1)
    h[1:] = np.cumsum(1.0 / np.arange(1, n + 1))
    return h


def _tie_aware_from_counts(n: np.ndarray, r: np.ndarray, harmonic: np.ndarray) -> np.ndarray:
    """Tie-aware AP from per-distance item counts ``n`` and relevant counts ``r`` (b, c+1).

    For a block of n items with r relevant, preceded by p items of which h relevant, the
    expected sum of precisions at its relevant items is
    (r/n) [ (h+1) dH + (r-1)/(n-1) (n - (p+1) dH) ],  dH = H(p+n) - H(p).
    """
    n = n.astype(np.float64)
    r = r.astype(np.float64)
    p = np.cumsum(n, axis=1) - n
    h = np.cumsum(r, axis=1) - r
    p_i, n_i = p.astype(np.int64), n.astype(np.int64)
    dh = harmonic[p_i + n_i] - harmonic[p_i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n > 1, (r - 1) / np.maximum(n - 1, 1), 0.0)
        contrib = np.where(
            n > 0, r / np.maximum(n, 1) * ((h + 1) * dh + frac * (n - (p + 1) * dh)), 0.0
        )
        total_r = r.sum(axis=1)
        return np.where(total_r > 0, contrib.sum(axis=1) / total_r, np.nan)


def tie_aware_ap(
    dist: np.ndarray, rel: np.ndarray, bits: int, harmonic: np.ndarray | None = None
) -> np.ndarray:
    """Expected AP over random orderings within tie blocks, per query (NaN when R = 0)."""
    b, n_db = dist.shape
    flat = (np.arange(b)[:, None] * (bits + 1) + dist).ravel()
    n = np.bincount(flat, minlength=b * (bits + 1)).reshape(b, bits + 1)
    r = np.bincount(flat, weights=rel.ravel(), minlength=b * (bits + 1)).reshape(b, bits + 1)
    return _tie_aware_from_counts(n, r, _harmonic(n_db) if harmonic is None else harmonic)


def _row_search(sorted_rows: np.ndarray, values: np.ndarray, side: str) -> np.ndarray:
    """Per row, np.searchsorted(sorted_rows[i], values[i]) for non-decreasing integer rows
    with values in 0..top, vectorised by offsetting each row past the previous one."""
    b, n = sorted_rows.shape
    top = int(max(sorted_rows.max(initial=0), values.max(initial=0))) + 1
    offset = np.arange(b, dtype=np.int64)[:, None] * top
    flat = (sorted_rows.astype(np.int64) + offset).ravel()
    idx = np.searchsorted(flat, (values.astype(np.int64) + offset).ravel(), side=side)
    return idx.reshape(values.shape) - np.arange(b, dtype=np.int64)[:, None] * n


def _block_metrics(
    dist: np.ndarray,
    rel: np.ndarray,
    tie_rank: np.ndarray,
    bits: int,
    ks: Sequence[int],
    pn: Sequence[int],
    harmonic: np.ndarray,
) -> _Block:
    b, n_db = dist.shape
    rows = np.arange(b)[:, None]
    order = rank_order(dist, tie_rank)
    g = rel[rows, order]  # relevance in ranked order
    hits = np.cumsum(g, axis=1, dtype=np.int32)
    n_rel = hits[:, -1].astype(np.int64)
    # cumulative sum of precision at the relevant ranks: every AP variant is a lookup in it
    cum_prec = np.cumsum(np.where(g, hits / np.arange(1, n_db + 1), 0.0), axis=1)

    def at(pos: np.ndarray) -> np.ndarray:  # cum_prec[row, pos - 1], 0 where pos == 0
        return np.where(pos > 0, cum_prec[rows[:, 0], np.maximum(pos, 1) - 1], 0.0)

    with np.errstate(invalid="ignore", divide="ignore"):
        ap_all = np.where(n_rel > 0, cum_prec[:, -1] / n_rel, np.nan)

    # counts within each Hamming radius, from the distances in ranked order
    radii = np.broadcast_to(np.arange(bits + 1), (b, bits + 1))
    retrieved = _row_search(dist[rows, order], radii, "right")
    relevant = np.where(retrieved > 0, hits[rows, np.maximum(retrieved, 1) - 1], 0)
    n_at = np.diff(retrieved, axis=1, prepend=0)
    r_at = np.diff(relevant, axis=1, prepend=0)
    blk = _Block(
        ap_all=ap_all,
        ap_tie=_tie_aware_from_counts(n_at, r_at, harmonic),
        n_rel=n_rel,
        pr_retrieved=retrieved,
        pr_relevant=relevant,
    )

    # dcmh: up to the rank of the min(k, R)-th relevant item, wherever it is ranked
    m_all = np.minimum(n_rel[:, None], np.asarray(ks, np.int64)[None, :])
    pos_all = _row_search(hits, m_all, "left") + 1 if len(ks) else m_all
    for j, k in enumerate(ks):
        kk = min(k, n_db)
        s = cum_prec[:, kk - 1]
        h_k = hits[:, kk - 1]
        m = m_all[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            blk.ap_k[f"map@{k}"] = np.where(n_rel > 0, s / np.minimum(n_rel, kk), np.nan)
            blk.ap_k[f"map@{k}_djsrh"] = np.where(h_k > 0, s / np.maximum(h_k, 1), 0.0)
            blk.ap_k[f"map@{k}_dcmh"] = np.where(
                m > 0, at(np.where(m > 0, pos_all[:, j], 0)) / m, 0.0
            )
    for nn in pn:
        blk.p_n[nn] = hits[:, min(nn, n_db) - 1] / min(nn, n_db)
    return blk


# entries of one (queries x database) block: bounds the memory of every per-block matrix
BLOCK_ENTRIES = 4_000_000


def _query_block(n_database: int, block: int) -> int:
    """Queries per block: at most ``block``, and at most BLOCK_ENTRIES / database size."""
    return max(1, min(block, BLOCK_ENTRIES // max(n_database, 1)))


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def evaluate(
    q_codes: np.ndarray,
    db_codes: np.ndarray,
    q_labels: np.ndarray,
    db_labels: np.ndarray,
    bits: int,
    *,
    ks: Sequence[int] = (50, 100, 500),
    pn: Sequence[int] = (1, 10, 50, 100, 500, 1000),
    tie_seed: int = 0,
    block: int = 128,
) -> dict:
    """All metrics of one retrieval task (e.g. image queries -> text database).

    ``q_codes``/``db_codes`` are packed uint8 codes; labels are (N, C) multi-hot.
    Returns a JSON-ready dict; see the module docstring for every definition.
    """
    if len(q_codes) != len(q_labels) or len(db_codes) != len(db_labels):
        raise ValueError(
            "codes and labels disagree in length: "
            f"query {len(q_codes)} vs {len(q_labels)}, "
            f"database {len(db_codes)} vs {len(db_labels)}"
        )
    if not len(q_codes) or not len(db_codes):
        raise ValueError(
            f"nothing to evaluate: {len(q_codes)} query and {len(db_codes)} database codes; "
            "every task needs at least one of each (a split with an empty query or database "
            "set: give datasets.<name>.split more items)"
        )
    n_db = len(db_codes)
    tie_rank = tie_permutation(n_db, tie_seed)
    harmonic = _harmonic(n_db)
    block = _query_block(n_db, block)
    parts: list[_Block] = []
    for sl in _blocks(len(q_codes), block):
        dist = hamming(q_codes[sl], db_codes)
        rel = relevance(q_labels[sl], db_labels)
        parts.append(_block_metrics(dist, rel, tie_rank, bits, ks, pn, harmonic))

    def cat(get) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])

    n_rel = cat(lambda p: p.n_rel)
    has_rel = n_rel > 0
    out: dict = {
        "n_query": int(len(q_codes)),
        "n_database": int(n_db),
        "n_query_without_relevant": int((~has_rel).sum()),
        "map@all": _nanmean(cat(lambda p: p.ap_all)),
        "map@all_tie_aware": _nanmean(cat(lambda p: p.ap_tie)),
    }
    for key in parts[0].ap_k:
        out[key] = _nanmean(cat(lambda p, key=key: p.ap_k[key]))
    out["p@n"] = {str(nn): float(cat(lambda p, nn=nn: p.p_n[nn]).mean()) for nn in pn}

    retrieved = cat(lambda p: p.pr_retrieved)[has_rel]
    relevant = cat(lambda p: p.pr_relevant)[has_rel]
    nonempty = retrieved > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(nonempty, relevant / np.maximum(retrieved, 1), np.nan)
        recall = relevant / n_rel[has_rel][:, None]
    out["pr"] = {
        "radius": list(range(bits + 1)),
        "precision": [_nanmean(precision[:, r]) for r in range(bits + 1)],
        "recall": [
            float(recall[:, r].mean()) if len(recall) else float("nan") for r in range(bits + 1)
        ],
        "coverage": [
            float(nonempty[:, r].mean()) if len(nonempty) else 0.0 for r in range(bits + 1)
        ],
    }
    return out


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def expected_random_map(q_labels: np.ndarray, db_labels: np.ndarray, block: int = 1024) -> float:
    """mAP@all of a uniformly random ranking (= the expectation over random codes).

    Per query with R relevant among N: E[AP] = (1/N) [H_N + (R-1)/(N-1) (N - H_N)].
    Queries with R = 0 are left out, as for mAP@all.
    """
    n = len(db_labels)
    hn = _harmonic(n)[n]
    aps = []
    for sl in _blocks(len(q_labels), _query_block(n, block)):
        r = relevance(q_labels[sl], db_labels).sum(axis=1).astype(np.float64)
        frac = (r - 1) / (n - 1) if n > 1 else np.zeros_like(r)
        aps.append(np.where(r > 0, (hn + frac * (n - hn)) / n, np.nan))
    return _nanmean(np.concatenate(aps))


def random_codes(n: int, bits: int, seed: int) -> np.ndarray:
    """Packed codes with independent fair random bits."""
    rng = np.random.default_rng(seed)
    return pack(rng.integers(0, 2, size=(n, bits), dtype=np.int8))
