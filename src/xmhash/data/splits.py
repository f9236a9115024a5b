"""Query / database / train / validation splits: one file per dataset and seed.

Protocol (the literature's, e.g. MIRFlickr 2,000 query / 18,015 database / 5,000 train):

* ``query``: drawn uniformly from all items (or the dataset's official query set);
* ``database``: every item that is not a query (the retrieval set);
* ``val``: drawn from the database; used only for model selection (``select: val``),
  as both query and retrieval set, so the query set is never touched before the
  final evaluation;
* ``train``: drawn from the database minus ``val`` (a subset of the database, as in
  DJSRH/JDSH/DGCPN/VTM-UCH), or all of it when ``train: all``.

Official splits (``official: true``) take the rows the feature file marks in
``official_split``: ``query`` rows are the queries, every other row the database; rows
marked ``train`` and ``val`` (RSHNL's XMedia/Wikipedia/INRIA/XMediaNet files) are kept as
the training and validation parts instead of being redrawn. ``val_from: train`` is UCCH's
selection set: the first ``val`` training rows in file order, which stay in training
(UCCH trains on all 18,015 retrieval items and picks its epoch on the first 2,000).

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
VAL_FROM = ("database", "train")


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
    official_train: np.ndarray | None = None,
    official_val: np.ndarray | None = None,
    val_from: str = "database",
) -> Split:
    """Draw a split of ``n_items`` items with a seeded permutation.

    ``official_query``/``official_database`` (index arrays) replace the random query draw
    with a dataset's published split (e.g. Wikipedia's 693 test / 2,173 train);
    ``official_train``/``official_val`` keep published training and validation rows too.
    ``val_from``: ``database`` draws ``val`` items from the database and keeps them out of
    training; ``train`` takes the first ``val`` training rows and leaves them in it.
    """
    if val_from not in VAL_FROM:
        raise SplitError(f"split.val_from={val_from!r}: expected one of {list(VAL_FROM)}")
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
    if official_val is not None or val_from == "train":
        t, v = _fixed_train_val(db, official_train, official_val, train, val)
        meta = {
            "seed": seed,
            "n_items": n_items,
            "official": official_query is not None,
            "val_from": "official" if official_val is not None else val_from,
            "requested": {"query": query, "train": train, "val": val},
        }
        return Split(*(np.sort(a).astype(np.int64) for a in (q, db, t, v)), meta=meta)
    if official_train is not None:  # official training rows; val drawn from them
        db_train = np.asarray(official_train, dtype=np.int64)
        pool = rng.permutation(db_train)
    else:
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
        "val_from": val_from,
        "requested": {"query": query, "train": train, "val": val},
    }
    return Split(*(np.sort(a).astype(np.int64) for a in (q, db, t, v)), meta=meta)


def _fixed_train_val(
    db: np.ndarray,
    official_train: np.ndarray | None,
    official_val: np.ndarray | None,
    train: int | str,
    val: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows that are not drawn: the official ones, or (UCCH) the
    first ``val`` training rows in file order, left in training."""
    t = np.sort(np.asarray(official_train if official_train is not None else db, np.int64))
    if official_val is not None:
        v = np.asarray(official_val, dtype=np.int64)
        if official_train is None:
            t = np.setdiff1d(t, v)
    else:
        if not 0 < val <= len(t):
            raise SplitError(
                f"split.val={val} with val_from: train must be between 1 and the "
                f"training rows ({len(t)})"
            )
        v = t[:val]
    if train != "all" and int(train) != len(t):
        raise SplitError(
            f"split.train={train}: the official split fixes {len(t)} training rows; "
            "set split.train: all"
        )
    return t, v


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
    val_from: str = "database",
) -> Split:
    """The split stage: a split of the rows of a feature file, saved to ``out``.

    With ``official``, the query set is the dataset's official query/test set (the
    feature file's ``official_split == "query"`` rows) and the database all other rows;
    rows marked ``train``/``val`` there are the training/validation parts when the file
    has validation rows (``train`` alone: ``val`` is drawn from them).
    """
    from xmhash.features.store import read_ids, read_official_split

    n = len(read_ids(features))
    oq = od = ot = ov = None
    if official:
        where = read_official_split(features)
        oq = np.flatnonzero(where == "query")
        od = np.flatnonzero(where != "query")
        if len(oq) == 0:
            raise SplitError(
                f"{features}: split.official is set but the dataset has no official query set"
            )
        if np.any(where == "val"):
            ov = np.flatnonzero(where == "val")
        if np.any(where == "train"):
            ot = np.flatnonzero(where == "train")
    split = make_split(
        n,
        query=query,
        train=train,
        val=val,
        seed=seed,
        official_query=oq,
        official_database=od,
        official_train=ot,
        official_val=ov,
        val_from=val_from,
    )
    save_split(out, split)
    return split
