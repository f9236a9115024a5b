"""Sparse graph -> igraph, Leiden communities, pseudo-centres, and diagnostics.

Leiden is ``leidenalg`` (Traag et al., Sci. Rep. 2019) with an explicit seed, so the
same graph and seed always give the same partition. Objectives: ``modularity``
(``RBConfigurationVertexPartition``: modularity with a resolution parameter, equal to
plain modularity at resolution 1) and ``cpm`` (constant Potts model; resolution = the
density threshold). Community ids are renumbered by decreasing size (0 = largest), so
a partition is comparable across runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import igraph as ig
import leidenalg
import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

OBJECTIVES = {
    "modularity": leidenalg.RBConfigurationVertexPartition,
    "cpm": leidenalg.CPMVertexPartition,
}


def to_igraph(adjacency: sp.spmatrix, *, weighted: bool = True, loops: bool = True) -> ig.Graph:
    """An undirected igraph graph from a (symmetrised or not) sparse adjacency matrix.

    Each unordered pair {i, j} becomes one edge (i <= j); its weight is the larger of
    a_ij and a_ji. Self-loops are kept unless ``loops`` is False.
    """
    a = sp.csr_matrix(adjacency)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    a = a.maximum(a.T).tocoo()
    keep = a.row <= a.col if loops else a.row < a.col
    edges = np.stack([a.row[keep], a.col[keep]], axis=1)
    g = ig.Graph(n=a.shape[0], edges=edges.tolist(), directed=False)
    if weighted:
        g.es["weight"] = a.data[keep].astype(float).tolist()
    return g


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber communities 0..C-1 by decreasing size (ties: by smallest member)."""
    labels = np.asarray(labels)
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    first = np.full(len(uniq), len(labels))
    np.minimum.at(first, inverse, np.arange(len(labels)))
    order = np.lexsort((first, -counts))
    new = np.empty(len(uniq), np.int64)
    new[order] = np.arange(len(uniq))
    return new[inverse]


@dataclass(frozen=True)
class Partition:
    labels: np.ndarray  # (n,) int64 community per node, 0 = largest
    quality: float  # the optimised objective's value
    modularity: float  # standard (resolution 1) modularity of the partition


def leiden(
    graph: ig.Graph,
    *,
    objective: str = "modularity",
    resolution: float = 1.0,
    seed: int = 0,
    n_iterations: int = -1,
    weighted: bool = True,
) -> Partition:
    """Leiden communities of ``graph``; deterministic for a given graph and seed.

    ``n_iterations=-1`` iterates until the partition is stable.
    """
    try:
        cls = OBJECTIVES[objective]
    except KeyError:
        raise ValueError(
            f"graph objective must be one of {sorted(OBJECTIVES)}, got {objective!r}"
        ) from None
    weights = "weight" if weighted and "weight" in graph.es.attributes() else None
    part = leidenalg.find_partition(
        graph,
        cls,
        weights=weights,
        resolution_parameter=resolution,
        n_iterations=n_iterations,
        seed=seed,
    )
    labels = relabel_by_size(np.asarray(part.membership))
    modularity = graph.modularity(labels.tolist(), weights=weights) if graph.ecount() else 0.0
    return Partition(labels=labels, quality=float(part.quality()), modularity=float(modularity))


def pseudo_centres(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean feature of every community (C, D), row c for label c."""
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} feature rows but {len(labels)} labels")
    c = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((c, x.shape[1]))
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=c)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def community_stats(labels: np.ndarray) -> dict[str, float | int | list[int]]:
    sizes = np.bincount(labels)
    return {
        "communities": int(len(sizes)),
        "sizes": sorted(sizes.tolist(), reverse=True),
        "largest": int(sizes.max()),
        "singletons": int((sizes == 1).sum()),
        "median_size": float(np.median(sizes)),
    }


# ---------------------------------------------------------------- diagnostics (not for training)


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information (arithmetic-mean normalisation) of two labelings."""
    t = _contingency(np.asarray(a), np.asarray(b)).astype(np.float64)
    n = t.sum()
    pa, pb, pab = t.sum(1) / n, t.sum(0) / n, t / n
    nz = pab > 0
    mi = float((pab[nz] * np.log(pab[nz] / np.outer(pa, pb)[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    if ha == 0 and hb == 0:
        return 1.0
    return mi / ((ha + hb) / 2) if ha + hb > 0 else 0.0


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings."""
    t = _contingency(np.asarray(a), np.asarray(b)).astype(np.float64)
    n = t.sum()

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, sa, sb = pairs(t), pairs(t.sum(1)), pairs(t.sum(0))
    expected = sa * sb / pairs(np.array([n]))
    top = (sa + sb) / 2
    return 1.0 if top == expected else float((index - expected) / (top - expected))


def dominant_label(labels: np.ndarray) -> np.ndarray:
    """One class per item from multi-hot labels: its rarest label (most specific);
    items without labels get -1."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(np.int64)
    freq = labels.sum(0).astype(np.float64)
    score = np.where(labels > 0, freq[None, :], np.inf)
    out = np.argmin(score, axis=1).astype(np.int64)
    out[labels.sum(1) == 0] = -1
    return out
