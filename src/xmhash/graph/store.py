"""The graph file: the only module that knows its HDF5 layout.

One file per dataset x encoder x graph kind x split seed,
``results/{dataset}/graph/{encoder}/{kind}/seed{seed}.h5``, built on the training rows of
that seed's split. Readable with plain h5py::

    /rows                 (n,)        int64    feature-file rows of the nodes (= split.train)
    /adjacency/indptr     (n+1,)      int64    the sparse graph (CSR, symmetric; weights =
    /adjacency/indices    (E,)        int64    similarities, 1 for unweighted graphs;
    /adjacency/data       (E,)        float32  self-loops allowed)
    /communities          (n,)        int64    Leiden community per node, 0 = largest
    /centres              (C, D)      float32  pseudo-centres: mean image feature per community
    /target               (n, n)      float32  optional dense training target (VTM-UCH's S)
    /extra/<name>         any         optional per-kind arrays (e.g. refined labels)

Root attributes: ``schema_version``, ``xmhash_version``, ``kind``, ``params`` (JSON: every
parameter that built the file), ``stats`` (JSON: sizes, modularity, diagnostics).
Written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from xmhash import __version__
from xmhash.io import atomic_path

SCHEMA_VERSION = 1
PARTS = ("adjacency", "communities", "centres", "target", "extra")


class GraphFileError(ValueError):
    """A graph file is missing a part or has the wrong shape; the message names both."""


@dataclass
class GraphFile:
    kind: str
    rows: np.ndarray
    adjacency: sp.csr_matrix | None = None
    communities: np.ndarray | None = None
    centres: np.ndarray | None = None
    target: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def validate(self, source: str = "graph") -> None:
        n = len(self.rows)
        if self.adjacency is not None and self.adjacency.shape != (n, n):
            raise GraphFileError(
                f"{source}: /adjacency has shape {self.adjacency.shape}, expected ({n}, {n})"
            )
        if self.communities is not None and self.communities.shape != (n,):
            raise GraphFileError(
                f"{source}: /communities has shape {self.communities.shape}, expected ({n},)"
            )
        if self.target is not None and self.target.shape != (n, n):
            raise GraphFileError(
                f"{source}: /target has shape {self.target.shape}, expected ({n}, {n})"
            )


def write_graph(path: str | os.PathLike, g: GraphFile) -> None:
    g.validate(str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(
            schema_version=SCHEMA_VERSION,
            xmhash_version=__version__,
            kind=g.kind,
            params=json.dumps(g.params, sort_keys=True, default=str),
            stats=json.dumps(g.stats, sort_keys=True, default=str),
        )
        f.create_dataset("rows", data=np.asarray(g.rows, np.int64))
        if g.adjacency is not None:
            a = sp.csr_matrix(g.adjacency)
            grp = f.create_group("adjacency")
            grp.attrs["shape"] = a.shape
            grp.create_dataset("indptr", data=a.indptr.astype(np.int64))
            grp.create_dataset("indices", data=a.indices.astype(np.int64), compression="gzip")
            grp.create_dataset("data", data=a.data.astype(np.float32), compression="gzip")
        if g.communities is not None:
            f.create_dataset("communities", data=np.asarray(g.communities, np.int64))
        if g.centres is not None:
            f.create_dataset("centres", data=np.asarray(g.centres, np.float32))
        if g.target is not None:
            n = len(g.rows)
            f.create_dataset(
                "target",
                data=np.asarray(g.target, np.float32),
                chunks=(min(n, 256), n) if n else None,
                compression="gzip",
                compression_opts=1,
            )
        for name, arr in g.extra.items():
            f.create_dataset(f"extra/{name}", data=np.asarray(arr))


def read_graph(path: str | os.PathLike, *, parts: Sequence[str] = PARTS) -> GraphFile:
    """Read a graph file (only ``parts``); errors name the file and the missing key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no graph file at {path}: run the graph stage first")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown graph file parts {sorted(unknown)}; known: {list(PARTS)}")
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema_version") != SCHEMA_VERSION:
            raise GraphFileError(
                f"{path}: schema_version {f.attrs.get('schema_version')}, expected {SCHEMA_VERSION}"
            )
        g = GraphFile(
            kind=str(f.attrs["kind"]),
            rows=f["rows"][()],
            params=json.loads(f.attrs["params"]),
            stats=json.loads(f.attrs["stats"]),
        )
        if "adjacency" in parts and "adjacency" in f:
            grp = f["adjacency"]
            g.adjacency = sp.csr_matrix(
                (grp["data"][()], grp["indices"][()], grp["indptr"][()]),
                shape=tuple(grp.attrs["shape"]),
            )
        if "communities" in parts and "communities" in f:
            g.communities = f["communities"][()]
        if "centres" in parts and "centres" in f:
            g.centres = f["centres"][()]
        if "target" in parts and "target" in f:
            g.target = f["target"][()]
        if "extra" in parts and "extra" in f:
            g.extra = {k: v[()] for k, v in f["extra"].items()}
    g.validate(str(path))
    return g


def require(g: GraphFile, part: str, path: str | os.PathLike, expected: str) -> Any:
    """The part ``part`` of ``g``, or an error naming the file, the key and its shape."""
    value = getattr(g, part)
    if value is None:
        raise GraphFileError(f"{path}: no /{part} ({expected}) in this {g.kind!r} graph file")
    return value
