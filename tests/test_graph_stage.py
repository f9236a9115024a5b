"""The graph file format and the graph stage on the small demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from xmhash.data.splits import split_features
from xmhash.graph.stage import build_graph
from xmhash.graph.store import GraphFile, GraphFileError, read_graph, write_graph


def test_graph_file_round_trip(tmp_path, rng):
    a = sp.random(20, 20, density=0.2, random_state=0, format="csr", dtype=np.float32)
    a = a.maximum(a.T).tocsr()
    g = GraphFile(
        kind="knn",
        rows=np.arange(100, 120),
        adjacency=a,
        communities=rng.integers(0, 3, 20),
        centres=rng.random((3, 4)),
        target=rng.random((20, 20)).astype(np.float32),
        extra={"refined": np.arange(20)},
        params={"k": 3},
        stats={"modularity": 0.5},
    )
    write_graph(tmp_path / "g.h5", g)
    back = read_graph(tmp_path / "g.h5")
    assert back.kind == "knn" and back.params == {"k": 3} and back.stats["modularity"] == 0.5
    np.testing.assert_array_equal(back.rows, g.rows)
    assert (back.adjacency != a).nnz == 0
    np.testing.assert_array_equal(back.communities, g.communities)
    np.testing.assert_allclose(back.centres, g.centres, rtol=1e-6)
    np.testing.assert_array_equal(back.target, g.target)
    np.testing.assert_array_equal(back.extra["refined"], np.arange(20))
    only = read_graph(tmp_path / "g.h5", parts=("communities",))
    assert only.target is None and only.adjacency is None


def test_graph_file_errors_name_file_and_key(tmp_path):
    bad = GraphFile(kind="knn", rows=np.arange(5), communities=np.zeros(4, np.int64))
    with pytest.raises(GraphFileError, match=r"/communities has shape \(4,\), expected \(5,\)"):
        write_graph(tmp_path / "bad.h5", bad)
    assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(FileNotFoundError, match="run the graph stage"):
        read_graph(tmp_path / "missing.h5")


@pytest.fixture(scope="module")
def demo_split(small_demo_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "seed0.npz"
    split = split_features(small_demo_file, path, seed=0, query=100, train=250, val=50)
    return path, split


@pytest.mark.parametrize(
    "kind,spec",
    [
        ("knn", {"k": 10}),
        ("vtmuch", {"n_clusters": 8, "kmeans_init": 2}),
    ],
)
def test_graph_stage_writes_graph_and_statistics(tmp_path, small_demo_file, demo_split, kind, spec):
    split_path, split = demo_split
    out, stats_out = tmp_path / "g.h5", tmp_path / "g.json"
    stats = build_graph(
        features=str(small_demo_file),
        split=str(split_path),
        kind=kind,
        spec=spec,
        seed=0,
        out=str(out),
        stats_out=str(stats_out),
    )
    g = read_graph(out)
    np.testing.assert_array_equal(g.rows, split.train)
    assert g.kind == kind and g.params["seed"] == 0
    assert all(g.params[k] == v for k, v in spec.items())
    assert g.communities.shape == (250,)
    assert sum(stats["sizes"]) == 250 and stats["communities"] == len(g.centres)
    assert -0.5 <= stats["modularity"] <= 1
    assert 0 <= stats["diagnostic_nmi"] <= 1
    assert json.loads(stats_out.read_text())["kind"] == kind
    assert (g.adjacency != g.adjacency.T).nnz == 0
    if kind == "vtmuch":
        assert g.target.shape == (250, 250)


def test_knn_graph_communities_follow_the_labels(tmp_path, small_demo_file, demo_split):
    """Diagnostic sanity: kNN communities on demo features carry label information."""
    split_path, _ = demo_split
    stats = build_graph(
        features=str(small_demo_file),
        split=str(split_path),
        kind="knn",
        spec={"k": 10},
        seed=0,
        out=str(tmp_path / "g.h5"),
        stats_out=str(tmp_path / "g.json"),
    )
    assert stats["diagnostic_nmi"] > 0.2


def test_unknown_kind_and_dense_limit(tmp_path, small_demo_file, demo_split):
    split_path, _ = demo_split
    with pytest.raises(ValueError, match="unknown graph kind 'nope'"):
        build_graph(
            features=str(small_demo_file),
            split=str(split_path),
            kind="nope",
            spec={},
            seed=0,
            out=str(tmp_path / "g.h5"),
            stats_out=str(tmp_path / "g.json"),
        )
    with pytest.raises(MemoryError, match="max_dense"):
        build_graph(
            features=str(small_demo_file),
            split=str(split_path),
            kind="vtmuch",
            spec={},
            seed=0,
            out=str(tmp_path / "g.h5"),
            stats_out=str(tmp_path / "g.json"),
            max_dense=1000,
        )
