"""Query / database / train / validation splits: one file per dataset and seed.

Protocol (the literature's, e.g. MIRFlickr 2,000 query / 18,015 database / 5,000 train):

* ``query``: drawn uniformly from all items (or the dataset's official query set);
* ``database``: every item that is not a query (the retrieval set);
* ``val``: drawn from the database; used only for model selection (``select: val``),
  as both query and retrieval set, so the query set is never touched before the
  final evaluation;
* ``train``: drawn from the database minus ``val`` (a subset of the database, as in
  DJSRH/JDSH/DGCPN/VTM-UCH), or all of it when ``train: all``.

The file is ``.npz`` with one sorted int64 index array per part (indices into the
feature file's rows) and a JSON ``meta`` string. Only this module reads or writes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xmhash.io import atomic_path

PARTS = ("query", "database", "train", "val")


class SplitError(ValueError):
    pass


@dataclass(frozen=True)
class Split:
    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    val: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {p: int(len(getattr(self, p))) for p in PARTS}


def make_split(
    n_items: int,
    *,
    query: int,
    train: int | str,
    val: int,
    seed: int,
    official_query: np.ndarray | None = None,
    official_database: np.ndarray | None = None,
) -> Split:
    """Draw a split of ``n_items`` items with a seeded permutation.

    ``official_query``/``official_database`` (index arrays) replace the random query draw
    with a dataset's published split (e.g. Wikipedia's 693 test / 2,173 train).
    """
    rng = np.random.default_rng(seed)
    if official_query is not None:
        q = np.asarray(official_query, dtype=np.int64)
        db = (
            np.asarray(official_database, dtype=np.int64)
            if official_database is not None
            else np.setdiff1d(np.arange(n_items), q)
        )
        if np.intersect1d(q, db).size:
            raise SplitError("official query and database sets overlap")
    else:
        if not 0 < query < n_items:
            raise SplitError(
                f"split.query={query} must be between 1 and the number of items - 1 ({n_items - 1})"
            )
        perm = rng.permutation(n_items)
        q, db = perm[:query], perm[query:]
    pool = rng.permutation(db)
    if val >= len(pool):
        raise SplitError(f"split.val={val} must be smaller than the database ({len(pool)})")
    v, rest = pool[:val], pool[val:]
    if train == "all":
        t = rest
    else:
        if not 0 < int(train) <= len(rest):
            raise SplitError(
                f"split.train={train} must be between 1 and database - val ({len(rest)})"
            )
        t = rest[: int(train)]
    meta = {
        "seed": seed,
        "n_items": n_items,
        "official": official_query is not None,
        "requested": {"query": query, "train": train, "val": val},
    }
    return Split(*(np.sort(a).astype(np.int64) for a in (q, db, t, v)), meta=meta)


def save_split(path: str | os.PathLike, split: Split) -> None:
    meta = {**split.meta, "sizes": split.sizes()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **{p: getattr(split, p) for p in PARTS})


def load_split(path: str | os.PathLike) -> Split:
    with np.load(path, allow_pickle=False) as z:
        missing = [p for p in PARTS if p not in z]
        if missing:
            raise SplitError(f"{path}: missing parts {missing}")
        return Split(*(z[p].astype(np.int64) for p in PARTS), meta=json.loads(str(z["meta"])))


def split_features(
    features: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int,
    query: int,
    train: int | str,
    val: int,
    official: bool = False,
) -> Split:
    """The split stage: a split of the rows of a feature file, saved to ``out``.

    With ``official``, the query set is the dataset's official query/test set (the
    feature file's ``official_split == "query"`` rows) and the database all other rows;
    ``query`` is then only checked against the official size.
    """
    from xmhash.features.store import read_ids, read_official_split

    n = len(read_ids(features))
    oq = od = None
    if official:
        where = read_official_split(features)
        oq = np.flatnonzero(where == "query")
        od = np.flatnonzero(where != "query")
        if len(oq) == 0:
            raise SplitError(
                f"{features}: split.official is set but the dataset has no official query set"
            )
    split = make_split(
        n, query=query, train=train, val=val, seed=seed, official_query=oq, official_database=od
    )
    save_split(out, split)
    return split
