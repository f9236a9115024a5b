"""The qualitative retrieval figure: the top-k of a few fixed queries, per direction.

Rows are queries (the same evenly spaced items of the query set for I→T and T→I), the
first column the query, the next ``k`` columns its best-ranked items under the
evaluation's own ranking (Hamming distance, ties broken by the fixed-seed permutation of
:mod:`xmhash.metrics`). An image is drawn as its thumbnail where the dataset has image
files (a prepared directory), a text as its words; either way with the item's labels.
A hit that shares a label with the query (the protocol's relevance) is framed green and
ticked, any other red and crossed, and each hit shows its Hamming distance.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xmhash import metrics  # noqa: E402
from xmhash.codes import load_codes  # noqa: E402
from xmhash.data.prepared import read_prepared  # noqa: E402
from xmhash.evaluate import TASKS, retrieval_set  # noqa: E402
from xmhash.features.store import FeatureFileError, read_features  # noqa: E402
from xmhash.report.names import display_name  # noqa: E402
from xmhash.report.plots import save_figure  # noqa: E402
from xmhash.report.tables import TASK_NAMES  # noqa: E402

RELEVANT, IRRELEVANT = "#1a9850", "#d73027"


def top_k(
    query: np.ndarray, database: np.ndarray, k: int, tie_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(database rows, Hamming distances) of the ``k`` best-ranked items per packed query
    code, ranked as the evaluation ranks them."""
    dist = metrics.hamming(query, database)
    order = metrics.rank_order(dist, metrics.tie_permutation(len(database), tie_seed))[:, :k]
    return order, np.take_along_axis(dist, order, axis=1)


def query_rows(n_query: int, n: int) -> np.ndarray:
    """``n`` fixed, evenly spaced positions in the query set."""
    return np.unique(np.linspace(0, n_query - 1, min(n, n_query)).round().astype(int))


def _images(prepared: str | os.PathLike | None) -> dict[str, Path]:
    if not prepared:
        return {}
    p = read_prepared(prepared)
    return {it.id: p.image_path(it) for it in p.items}


def _features(path: str | os.PathLike):
    try:
        return read_features(path, parts=("texts",))
    except FeatureFileError:  # a feature file without texts (the synthetic demo)
        return read_features(path, parts=())


def retrieval_examples(
    codes: str | os.PathLike,
    features: str | os.PathLike,
    out: str | Sequence[str],
    *,
    prepared: str | os.PathLike | None = None,
    database: str = "retrieval",
    n_queries: int = 3,
    k: int = 5,
    tie_seed: int = 0,
) -> Figure:
    c = load_codes(codes)
    f = _features(features)
    images = _images(prepared)
    names = f.label_names or [f"label {j}" for j in range(f.labels.shape[1])]
    db = retrieval_set(c, database)
    rows = query_rows(len(c.query.index), n_queries)
    fig, axes = plt.subplots(
        2 * len(rows), k + 1, figsize=(1.9 * (k + 1), 2.1 * 2 * len(rows)), squeeze=False
    )
    r = 0
    for task, (qm, dm) in TASKS.items():
        hits, dist = top_k(getattr(c.query, qm)[rows], getattr(db, dm), k, tie_seed)
        for q, row_hits, row_dist in zip(rows, hits, dist, strict=True):
            item = c.query.index[q]
            _item(axes[r, 0], f, images, names, item, qm, frame="k")
            axes[r, 0].set_title(f"{TASK_NAMES[task]} query", fontsize=8, fontweight="bold")
            for col, (h, d) in enumerate(zip(row_hits, row_dist, strict=True), start=1):
                hit = db.index[h]
                ok = bool((f.labels[item] & f.labels[hit]).any())
                _item(axes[r, col], f, images, names, hit, dm, RELEVANT if ok else IRRELEVANT)
                axes[r, col].set_title(
                    f"{'✓' if ok else '✗'} #{col}, d={int(d)}",
                    fontsize=8,
                    color=RELEVANT if ok else IRRELEVANT,
                )
            r += 1
    method = display_name(str(c.attrs.get("method", "")))
    fig.suptitle(
        f"{c.attrs.get('dataset', '')}: top-{k} of {len(rows)} fixed queries per direction, "
        f"{method}, {c.bits} bits, seed {c.attrs.get('seed', '')}",
        fontsize=10,
    )
    note = (
        "green ✓: shares a label with the query (relevant); red ✗: shares none; d: Hamming distance"
    )
    return save_figure(fig, out, note, legend=False)


def _item(ax, f, images: dict[str, Path], names, row: int, modality: str, frame: str) -> None:
    """One item: its thumbnail (image with a file) or words, with its labels below."""
    labels = ", ".join(names[j] for j in np.flatnonzero(f.labels[row])) or "no label"
    path = images.get(str(f.ids[row])) if modality == "image" else None
    if path is not None and path.exists():
        ax.imshow(plt.imread(path))
        body = ""
    elif modality == "text" and f.texts is not None:
        body = "\n".join(textwrap.wrap(str(f.texts[row]), 22)[:6])
    else:
        body = f"{modality} of\nitem {f.ids[row]}"
    ax.text(0.5, 0.55, body, ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.set_xlabel("\n".join(textwrap.wrap(labels, 26)[:3]), fontsize=6.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(frame)
        spine.set_linewidth(2.5)
