"""VTM-UCH's offline similarity construction (Fan & Cao, AAAI 2025, §3 of the paper;
official code github.com/louisfanhz/VTMUCH).

Inputs are the training items' word-level embeddings (one per word/token of the text)
and region-level embeddings (the detected objects of the image, the whole image last),
as :class:`xmhash.features.store.Ragged`, plus the global image embeddings. Outputs:

* S^y, text similarity from vision: each word is matched to its most similar vision of
  the paired image, the matched visions' k-means clusters form the text's label set,
  and two texts are similar when their label sets intersect;
* A and S^x, object-level image similarity: a symmetric best-match (Chamfer) mean of
  the two images' vision sets, rows L2-normalised, thresholded at mu + lambda*sigma of the
  off-diagonal population;
* S^f = S^y OR S^x, the unweighted graph of its positive entries (self-loops included),
  Leiden communities (modularity) on it;
* densified centres (community centroids of the global image embedding plus all
  pairwise midpoints, one Lloyd step) -> refined labels y' -> S^c;
* the joint target S: S^f where S^f and S^c agree, else A min-max rescaled per row to
  [-1, 1].

These matrices are n x n by construction (the paper uses n = 5,000 training pairs):
every function checks ``max_dense`` first.

Checked against the official code (``benchmarks/official/vtmuch_graph.py`` runs the
official ``VTMUCH.__init__`` on the same word, region and global features; numbers in
``docs/vtmuch_enhash.md``): A, S^x, S^y given the same k-means labels, S^f, and S given
the same communities agree exactly (max |difference| 0). The differences that remain:

* k-means is our own seeded Lloyd with random init and ``n_init`` restarts, not
  sklearn's KMeans: a different local optimum (NMI of the vision labels 0.76-0.96 on
  the demos, within the 0.73-0.98 of sklearn against itself at the next random_state);
* Leiden is seeded (the official call is unseeded, so its communities vary run to run)
  and iterates until stable (leidenalg's default, which the official call keeps, is 2
  iterations);
* communities: the official code passes a networkx graph to cdlib's ``leiden``, whose
  conversion to igraph names vertex k after the k-th node in networkx's insertion
  order while the edges use the node integers themselves, so the labels it returns
  are the Leiden partition permuted (:func:`cdlib_labels`); its S^c is then built from
  communities of modularity about 0 (0.001-0.014 on the demos, vs 0.12-0.69 for the
  partition itself). We use the partition; ``cdlib_order=True`` reproduces the
  official labels (NMI 1.0 against the official run where Leiden is stable);
* a pair of images whose visions have no positive cosine gets a = 0 here; the official
  best-match mean divides 0 by 0 there, which turns the whole row of A and then the
  population mean and std into NaN (S^x all -1). CLIP embeddings have positive
  cosines, so this only shows on synthetic features;
* a text with no word (or no matched vision) is similar only to itself here; the
  official code cannot run on it (k-means ``predict`` of an empty set).

Why a target S gives a flat curve over code lengths: the codes reproduce K * S with
K-bit inner products, so they can carry at most the top K eigen-directions of S. With
few communities the block part S^c has rank at most the number of refined groups (4
communities -> 10 centres on the demo), and most of S lies in a few directions (demo,
2,000 training items: 93 % of ||S||_F^2 in the top 16 eigenvalues, 96 % in 32, 97.5 % in
64); ranking the training items by the best rank-K approximation of S reaches mAP
0.891 / 0.906 / 0.914 at K = 16 / 32 / 64, so 16 bits already carry nearly all that S
can teach (``benchmarks/vtmuch_baselines.py`` prints this table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmhash.features.store import Ragged
from xmhash.graph.communities import Partition, leiden, to_igraph
from xmhash.graph.similarity import DEFAULT_MAX_DENSE, check_dense
from xmhash.log import progress

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- k-means over visions


def kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd k-means with random init (k distinct rows), best of ``n_init`` by inertia.

    Each run stops when no assignment changes. Returns ``(centres (k, D), labels (n,))``;
    deterministic for a given seed. Distances are ||x||^2 - 2 x.c + ||c||^2 in float32
    (one matmul per iteration), centroids are accumulated in float64.
    """
    xt = torch.as_tensor(np.asarray(x, np.float32))
    n = len(xt)
    if not 1 <= k <= n:
        raise ValueError(f"k-means: need 1 <= n_clusters <= number of points ({n}), got {k}")
    rng = np.random.default_rng(seed)
    x64 = xt.double()
    sq = (xt**2).sum(1, keepdim=True)
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(n_init):
        c = xt[torch.from_numpy(rng.choice(n, size=k, replace=False))].clone()
        labels = torch.full((n,), -1)
        for _ in range(max_iter):
            d = sq - 2 * xt @ c.T + (c**2).sum(1)[None, :]
            new = d.argmin(1)
            if torch.equal(new, labels):
                break
            labels = new
            counts = torch.bincount(labels, minlength=k)
            sums = torch.zeros(k, xt.shape[1], dtype=torch.float64).index_add_(0, labels, x64)
            keep = counts > 0  # an empty cluster keeps its centre
            c[keep] = (sums[keep] / counts[keep, None]).float()
        inertia = float(d.gather(1, labels[:, None]).clamp_min(0).sum())
        if best is None or inertia < best[0]:
            best = (inertia, c, labels)
    assert best is not None
    return best[1].numpy(), best[2].numpy().astype(np.int64)


# ---------------------------------------------------------------- S^y


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def matched_visions(words: Ragged, regions: Ragged) -> list[np.ndarray]:
    """Per item, the (unique, sorted) rows of ``regions.embeddings`` that some word of
    the item's text matches best (cosine argmax over the paired image's visions)."""
    if len(words.offsets) != len(regions.offsets):
        raise ValueError(
            f"words describe {len(words.offsets) - 1} items, regions {len(regions.offsets) - 1}"
        )
    out = []
    for i in range(len(words.offsets) - 1):
        w, v = words.rows(i), regions.rows(i)
        if len(w) == 0 or len(v) == 0:
            out.append(np.zeros(0, np.int64))
            continue
        best = np.argmax(_unit(w) @ _unit(v).T, axis=1)
        out.append(np.unique(best) + int(regions.offsets[i]))
    return out


def text_similarity(
    matched: list[np.ndarray], vision_labels: np.ndarray, n_clusters: int
) -> np.ndarray:
    """S^y (n, n) int8: +1 when the cluster-label sets of two texts' matched visions
    intersect, else -1; the diagonal is +1."""
    n = len(matched)
    z = np.zeros((n, n_clusters), np.float32)
    for i, rows in enumerate(matched):
        z[i, vision_labels[rows]] = 1
    s = np.where(z @ z.T > 0, 1, -1).astype(np.int8)
    np.fill_diagonal(s, 1)
    return s


# ---------------------------------------------------------------- A and S^x


def padded_visions(regions: Ragged, truncation: float = 2.0) -> np.ndarray:
    """(n, m, D) L2-normalised visions per item, m = floor(max count / truncation); longer
    sets are cut (the whole image, stored last, is then dropped, as in the official
    code), shorter ones zero-padded."""
    counts = regions.counts()
    m = max(1, int(counts.max() // truncation)) if len(counts) else 1
    n, d = len(counts), regions.embeddings.shape[1]
    out = np.zeros((n, m, d), np.float32)
    unit = _unit(regions.embeddings.astype(np.float32))
    for i in range(n):
        rows = unit[regions.offsets[i] : regions.offsets[i] + min(m, counts[i])]
        out[i, : len(rows)] = rows
    return out


def object_affinity(
    visions: np.ndarray, *, block: int = 256, max_dense: int = DEFAULT_MAX_DENSE
) -> np.ndarray:
    """A (n, n) float32: the symmetric best-match mean of two vision sets, then every row
    L2-normalised.

    a_ij = (sum_q max_p C_pq + sum_p max_q C_pq) / (number of non-zero maxima), with
    C = V_i V_j^T over the (padded) visions; padded rows give zero maxima and are
    ignored by the count.
    """
    n = len(visions)
    check_dense(n, n, max_dense, "object affinity")
    v = torch.as_tensor(visions)
    m = visions.shape[1]
    block = max(1, min(block, 2**25 // max(1, n * m * m)))  # <= 128 MiB of cosines per block
    a = np.empty((n, n), np.float32)
    for start in progress(
        range(0, n, block), desc="object affinity", total=-(-n // block), unit="block"
    ):
        vi = v[start : start + block]
        c = torch.einsum("ipd,jqd->ijpq", vi, v)  # (b, n, m, m)
        col = c.amax(dim=2)  # for every vision q of j: best p of i
        row = c.amax(dim=3)  # for every vision p of i: best q of j
        total = col.sum(-1) + row.sum(-1)
        count = (col != 0).sum(-1) + (row != 0).sum(-1)
        a[start : start + block] = (total / count.clamp_min(1)).numpy()
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def population_threshold(a: np.ndarray, lam: float) -> tuple[np.ndarray, float, float]:
    """S^x (n, n) int8: +1 where A > mu + lam * sigma, mu and sigma (sample std) over the
    strict upper triangle."""
    iu = np.triu_indices(len(a), 1)
    pop = a[iu].astype(np.float64)
    mu = float(pop.mean()) if len(pop) else 0.0
    sigma = float(pop.std(ddof=1)) if len(pop) > 1 else 0.0  # torch.std_mean's default
    return np.where(a > mu + lam * sigma, 1, -1).astype(np.int8), mu, sigma


# ---------------------------------------------------------------- union, communities, S


def union(sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """S^f = S^y OR S^x (int8 ±1)."""
    return np.where((sy > 0) | (sx > 0), 1, -1).astype(np.int8)


def positive_graph(s: np.ndarray) -> sp.csr_matrix:
    """The unweighted, symmetric adjacency of the positive entries of ``s`` (an
    asymmetric positive becomes an undirected edge; self-loops kept)."""
    a = sp.csr_matrix((s > 0).astype(np.float32))
    return a.maximum(a.T).tocsr()


def cdlib_node_order(s: np.ndarray) -> np.ndarray:
    """The order in which the official code's networkx graph meets its nodes: the
    positive entries of ``s`` row by row, each edge adding its row node, then its column
    node, when new."""
    rows, cols = np.nonzero(s > 0)
    flat = np.stack([rows, cols], axis=1).ravel()
    _, first = np.unique(flat, return_index=True)
    return flat[np.sort(first)]


def cdlib_labels(s: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The community labels the official code ends up with for the partition ``labels``
    of the graph of ``s``.

    The official code builds a networkx graph from the positive entries of S^f and calls
    cdlib's ``leiden``. cdlib (0.2.6 to 0.4.1 at least) converts a graph whose node
    names are the integers 0..n-1 by creating igraph vertex k for node k, but names
    vertex k after the k-th node in networkx's insertion order; the communities it
    returns are lists of those names. Item ``order[k]`` therefore receives the community
    of vertex (item) k: the partition is permuted by the insertion order.
    """
    order = cdlib_node_order(s)
    if len(order) != len(labels):
        raise ValueError("every node needs a positive entry (the diagonal of S^f is +1)")
    out = np.empty_like(labels)
    out[order] = labels
    return out


def densify_centres(g: np.ndarray, communities: np.ndarray) -> np.ndarray:
    """Refined labels y': nearest of (community centroids of ``g`` + all pairwise
    midpoints), then one Lloyd step (centroids of the non-empty groups, reassign).
    Labels are indices of the final centres."""
    g = np.asarray(g, np.float64)
    c = int(communities.max()) + 1
    mu = np.zeros((c, g.shape[1]))
    np.add.at(mu, communities, g)
    mu /= np.bincount(communities, minlength=c)[:, None]
    ia, ib = np.triu_indices(c, 1)
    centres = np.concatenate([mu, (mu[ia] + mu[ib]) / 2])
    assign = _nearest(g, centres)
    used = np.unique(assign)
    refit = np.stack([g[assign == u].mean(0) for u in used])
    return _nearest(g, refit)


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    c = torch.as_tensor(centres)
    step = max(1, 2**24 // max(1, len(c)))  # bounded distance blocks
    return np.concatenate(
        [
            torch.cdist(torch.as_tensor(x[i : i + step]), c).argmin(1).numpy()
            for i in range(0, len(x), step)
        ]
    ).astype(np.int64)


def same_label(labels: np.ndarray) -> np.ndarray:
    """S^c (n, n) int8: +1 where two items share a label, else -1."""
    return np.where(labels[:, None] == labels[None, :], 1, -1).astype(np.int8)


def row_minmax(a: np.ndarray) -> np.ndarray:
    """Each row rescaled linearly to [-1, 1] (a constant row becomes 0)."""
    lo, hi = a.min(1, keepdims=True), a.max(1, keepdims=True)
    return (2 * (a - lo) / np.maximum(hi - lo, 1e-12) - 1).astype(np.float32) * (hi > lo)


def joint_similarity(sf: np.ndarray, sc: np.ndarray, a: np.ndarray) -> np.ndarray:
    """S (n, n) float32: S^f where S^f and S^c agree, else A rescaled per row to [-1, 1]."""
    return np.where(sf == sc, sf.astype(np.float32), row_minmax(a)).astype(np.float32)


# ---------------------------------------------------------------- the whole construction


@dataclass
class VTMGraph:
    target: np.ndarray  # S (n, n) float32, the training target
    union: np.ndarray  # S^f (n, n) int8
    communities: np.ndarray  # Leiden labels on S^f, (n,)
    refined: np.ndarray  # y' after densified centres, (n,)
    partition: Partition
    stats: dict[str, Any] = field(default_factory=dict)


def build_vtmuch(
    image: np.ndarray,
    words: Ragged,
    regions: Ragged,
    *,
    n_clusters: int = 14,
    si_std: float = 1.1,
    truncation: float = 2.0,
    objective: str = "modularity",
    resolution: float = 1.0,
    seed: int = 0,
    kmeans_init: int = 10,
    cdlib_order: bool = False,
    max_dense: int = DEFAULT_MAX_DENSE,
) -> VTMGraph:
    """Every step of the construction on the training items (rows of ``image``, ``words``, ``regions``).

    ``cdlib_order`` reproduces the official code's community labels, the Leiden
    partition permuted through cdlib's node naming (:func:`cdlib_labels`), instead of
    the partition of the graph itself.
    """
    n = len(image)
    for name, rag in (("words", words), ("regions", regions)):
        if len(rag.offsets) != n + 1:
            raise ValueError(
                f"{name}: offsets describe {len(rag.offsets) - 1} items, the image features {n}"
            )
    check_dense(n, n, max_dense, "VTM-UCH similarity")
    _, vision_labels = kmeans(regions.embeddings, n_clusters, seed=seed, n_init=kmeans_init)
    matched = matched_visions(words, regions)
    sy = text_similarity(matched, vision_labels, n_clusters)
    a = object_affinity(padded_visions(regions, truncation), max_dense=max_dense)
    sx, mu, sigma = population_threshold(a, si_std)
    sf = union(sy, sx)
    graph = to_igraph(positive_graph(sf), weighted=False)
    part = leiden(
        graph,
        objective=objective,
        resolution=resolution,
        seed=seed,
        weighted=False,
    )
    communities = cdlib_labels(sf, part.labels) if cdlib_order else part.labels
    refined = densify_centres(image, communities)
    sc = same_label(refined)
    target = joint_similarity(sf, sc, a)
    off = ~np.eye(n, dtype=bool)
    stats = {
        "positive_text": float((sy[off] > 0).mean()) if n > 1 else 0.0,
        "positive_image": float((sx[off] > 0).mean()) if n > 1 else 0.0,
        "positive_union": float((sf[off] > 0).mean()) if n > 1 else 0.0,
        "positive_target": float((target[off] == 1).mean()) if n > 1 else 0.0,
        "soft_target": float((np.abs(target[off]) < 1).mean()) if n > 1 else 0.0,
        "affinity_mean": mu,
        "affinity_std": sigma,
        "refined_groups": int(len(np.unique(refined))),
        "communities_used": int(len(np.unique(communities))),
        "modularity_used": float(graph.modularity(communities.tolist())) if n > 1 else 0.0,
    }
    log.info("VTM-UCH graph on %d items: %s", n, stats)
    return VTMGraph(
        target=target,
        union=sf,
        communities=communities,
        refined=refined,
        partition=part,
        stats=stats,
    )
