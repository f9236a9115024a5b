"""The graph stage: build one kind of graph on a split's training rows, find communities,
write the graph file and its statistics.

Graph kinds are registered in :data:`BUILDERS` (name -> function); the ``graph.<kind>``
config block holds the builder's keyword arguments. A builder takes the feature file's
training part and returns a :class:`~xmhash.graph.store.GraphFile` without ``rows``;
this module adds the rows, the diagnostics (NMI/ARI of the communities against the true
labels, never used for training) and the timings.

* ``knn``: exact cosine kNN graph of one modality's global features (blockwise torch,
  or faiss), symmetrised, Leiden (modularity or CPM, seeded) -> communities and
  pseudo-centres. Never dense: O(n k) memory beyond one block of similarities.
* ``vtmuch``: VTM-UCH's S^y / S^x / S^f / S^c / S construction (:mod:`xmhash.graph.vtmuch`),
  dense n x n by definition, refused above ``max_dense`` entries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from xmhash.data.splits import load_split
from xmhash.device import resolve_device
from xmhash.features.store import Features, read_features
from xmhash.graph.communities import (
    ari,
    community_stats,
    dominant_label,
    leiden,
    nmi,
    pseudo_centres,
    to_igraph,
)
from xmhash.graph.similarity import DEFAULT_MAX_DENSE, knn, knn_to_sparse
from xmhash.graph.store import GraphFile, write_graph
from xmhash.graph.vtmuch import build_vtmuch, positive_graph
from xmhash.io import write_json

log = logging.getLogger(__name__)


def _timed(timings: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - t0, 3)
    log.info("%s: %.2f s", name, timings[name])
    return out


def build_knn(
    feats: Features,
    *,
    seed: int,
    device: str = "cpu",
    max_dense: int,
    modality: str = "image",
    k: int = 10,
    backend: str = "torch",
    block: int = 4096,
    half: bool = False,
    symmetrize: str = "max",
    objective: str = "modularity",
    resolution: float = 1.0,
    n_iterations: int = -1,
    weighted: bool = True,
) -> tuple[GraphFile, dict[str, float]]:
    del max_dense  # never dense
    timings: dict[str, float] = {}
    if modality not in ("image", "text"):
        raise ValueError(f"graph.knn.modality must be 'image' or 'text', got {modality!r}")
    x = getattr(feats, modality)
    idx, sim = _timed(
        timings, "knn", lambda: knn(x, k, block=block, device=device, half=half, backend=backend)
    )
    adj = knn_to_sparse(idx, np.maximum(sim, 0) if weighted else None, symmetrize=symmetrize)
    graph = _timed(timings, "igraph", lambda: to_igraph(adj, weighted=weighted))
    part = _timed(
        timings,
        "leiden",
        lambda: leiden(
            graph,
            objective=objective,
            resolution=resolution,
            seed=seed,
            n_iterations=n_iterations,
            weighted=weighted,
        ),
    )
    g = GraphFile(
        kind="knn",
        rows=np.zeros(0, np.int64),
        adjacency=adj,
        communities=part.labels,
        centres=pseudo_centres(feats.image, part.labels),
        stats={
            "modularity": part.modularity,
            "quality": part.quality,
            "edges": int(graph.ecount()),
        },
    )
    return g, timings


def build_vtmuch_graph(
    feats: Features,
    *,
    seed: int,
    device: str = "cpu",
    max_dense: int,
    **settings,
) -> tuple[GraphFile, dict[str, float]]:
    """``settings``: the ``graph.vtmuch`` block, passed to :func:`build_vtmuch` (which
    holds their defaults)."""
    del device
    timings: dict[str, float] = {}
    for part in ("words", "regions"):
        if getattr(feats, part) is None:
            raise ValueError(
                f"the vtmuch graph needs /{part} in the feature file "
                f"(word- and region-level embeddings); this one has none"
            )
    vg = _timed(
        timings,
        "vtmuch",
        lambda: build_vtmuch(
            feats.image,
            feats.words,
            feats.regions,
            seed=seed,
            max_dense=max_dense,
            **settings,
        ),
    )
    adj = positive_graph(vg.union)
    g = GraphFile(
        kind="vtmuch",
        rows=np.zeros(0, np.int64),
        adjacency=adj,
        communities=vg.communities,
        centres=pseudo_centres(feats.image, vg.communities),
        target=vg.target,
        extra={"refined": vg.refined},
        stats={
            "modularity": vg.partition.modularity,
            "quality": vg.partition.quality,
            "edges": int((adj.nnz + adj.diagonal().astype(bool).sum()) // 2),
            **vg.stats,
        },
    )
    return g, timings


BUILDERS: dict[str, Callable[..., tuple[GraphFile, dict[str, float]]]] = {
    "knn": build_knn,
    "vtmuch": build_vtmuch_graph,
}
PARTS_NEEDED = {"knn": ("image", "text"), "vtmuch": ("image", "text", "words", "regions")}


def build_graph(
    *,
    features: str,
    split: str,
    kind: str,
    spec: Mapping[str, Any],
    seed: int,
    out: str,
    stats_out: str,
    device: str = "cpu",
    max_dense: int = DEFAULT_MAX_DENSE,
    threads: int | None = None,
) -> dict[str, Any]:
    """The graph stage's entry point: one graph file and one statistics JSON.

    ``device`` is 'auto', 'cpu' or 'cuda[:i]' (used by the kNN search).
    """
    if threads:
        torch.set_num_threads(threads)
    device = str(resolve_device(device))
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown graph kind {kind!r}; registered: {sorted(BUILDERS)}") from None
    sp_ = load_split(split)
    feats = read_features(features, parts=PARTS_NEEDED.get(kind, ("image", "text")))
    rows = sp_.train
    train = Features(
        ids=feats.ids[rows],
        labels=feats.labels[rows],
        image=feats.image[rows],
        text=feats.text[rows],
        words=feats.words.subset(rows) if feats.words is not None else None,
        regions=feats.regions.subset(rows) if feats.regions is not None else None,
        attrs=feats.attrs,
    )
    log.info(
        "graph %s on %d training items of %s (split %s), params %s",
        kind,
        len(rows),
        features,
        split,
        dict(spec),
    )
    t0 = time.perf_counter()
    g, timings = builder(train, seed=seed, device=device, max_dense=max_dense, **dict(spec))
    g.rows = rows
    g.params = {
        "kind": kind,
        "seed": seed,
        "max_dense": max_dense,
        **dict(spec),
        "features": str(features),
        "encoder": feats.attrs.get("encoder"),
    }
    truth = dominant_label(train.labels)
    known = truth >= 0
    g.stats.update(community_stats(g.communities))
    g.stats.update(
        nodes=len(rows),
        seconds=timings | {"total": round(time.perf_counter() - t0, 3)},
        diagnostic_nmi=nmi(g.communities[known], truth[known]) if known.any() else None,
        diagnostic_ari=ari(g.communities[known], truth[known]) if known.any() else None,
    )
    write_graph(out, g)
    stats = {"kind": kind, "params": g.params, **g.stats}
    write_json(stats_out, stats)
    log.info(
        "graph %s: %d communities (largest %d), modularity %.3f, NMI %.3f vs labels (diagnostic)",
        kind,
        g.stats["communities"],
        g.stats["largest"],
        g.stats["modularity"],
        g.stats["diagnostic_nmi"] or float("nan"),
    )
    return stats
