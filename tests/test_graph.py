"""Graph stage functions: blockwise similarity and kNN, Leiden, pseudo-centres."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmhash.graph.communities import (
    ari,
    dominant_label,
    leiden,
    nmi,
    pseudo_centres,
    relabel_by_size,
    to_igraph,
)
from xmhash.graph.similarity import (
    DenseTooLargeError,
    check_dense,
    knn,
    knn_to_sparse,
)


def _dense_cos(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_dense_limit_is_enforced():
    check_dense(10, 10, 100)  # at the limit: allowed
    with pytest.raises(DenseTooLargeError, match=r"30 x 30 .* graph.max_dense=100"):
        check_dense(30, 30, 100)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_blockwise_knn_equals_dense_topk(rng, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    x = rng.standard_normal((97, 12)).astype(np.float32)
    k = 6
    idx, sim = knn(x, k, block=10, backend=backend)
    s = _dense_cos(x)
    np.fill_diagonal(s, -np.inf)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
    assert idx.shape == sim.shape == (97, k)
    assert not (idx == np.arange(97)[:, None]).any()
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(sim, np.take_along_axis(s, ref, 1), atol=1e-5)


def test_knn_rejects_bad_k(rng):
    with pytest.raises(ValueError, match="k must be"):
        knn(rng.standard_normal((5, 3)), 5)


def test_knn_to_sparse_symmetrisation():
    idx = np.array([[1], [2], [1]])
    sim = np.array([[0.5], [0.9], [0.7]], np.float32)
    a = knn_to_sparse(idx, sim, symmetrize="max").toarray()
    np.testing.assert_allclose(a, a.T)
    assert a[0, 1] == pytest.approx(0.5) and a[1, 2] == pytest.approx(0.9)
    m = knn_to_sparse(idx, sim, symmetrize="mutual").toarray()
    assert m[0, 1] == 0 and m[1, 2] == pytest.approx(0.7)


def test_to_igraph_keeps_one_edge_per_pair_and_loops():
    a = sp.csr_matrix(np.array([[1, 2, 0], [2, 0, 3], [0, 3, 0]], np.float32))
    g = to_igraph(a)
    assert g.vcount() == 3 and not g.is_directed()
    assert sorted(map(tuple, g.get_edgelist())) == [(0, 0), (0, 1), (1, 2)]
    assert sorted(g.es["weight"]) == [1.0, 2.0, 3.0]
    assert to_igraph(a, loops=False).ecount() == 2


def planted(rng, sizes=(60, 50, 40, 30), p_in=0.3, p_out=0.01):
    truth = np.repeat(np.arange(len(sizes)), sizes)
    n = len(truth)
    same = truth[:, None] == truth[None, :]
    p = np.where(same, p_in, p_out)
    upper = np.triu(rng.random((n, n)) < p, 1)
    return sp.csr_matrix(upper.astype(np.float32)), truth


@pytest.mark.parametrize("objective,resolution", [("modularity", 1.0), ("cpm", 0.1)])
def test_leiden_recovers_planted_partition(rng, objective, resolution):
    adj, truth = planted(rng)
    part = leiden(to_igraph(adj), objective=objective, resolution=resolution, seed=3)
    assert nmi(part.labels, truth) > 0.9
    assert part.modularity > 0.3


def test_leiden_same_seed_same_communities(rng):
    adj, _ = planted(rng, sizes=(40,) * 6, p_in=0.15, p_out=0.03)
    g = to_igraph(adj)
    a = leiden(g, seed=7)
    b = leiden(to_igraph(adj), seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.quality == b.quality


def test_resolution_controls_granularity(rng):
    adj, _ = planted(rng)
    g = to_igraph(adj)
    coarse = leiden(g, objective="cpm", resolution=0.001, seed=0)
    fine = leiden(g, objective="cpm", resolution=0.8, seed=0)
    assert coarse.labels.max() < fine.labels.max()


def test_relabel_by_size_and_pseudo_centres():
    labels = relabel_by_size(np.array([5, 9, 9, 5, 9, 2]))
    np.testing.assert_array_equal(labels, [1, 0, 0, 1, 0, 2])
    x = np.array([[0, 0], [1, 1], [3, 3], [2, 2], [5, 5], [7, 7]], np.float32)
    np.testing.assert_allclose(pseudo_centres(x, labels), [[3, 3], [1, 1], [7, 7]])


def test_nmi_and_ari_reference_values():
    a = np.array([0, 0, 1, 1])
    assert nmi(a, [5, 5, 7, 7]) == pytest.approx(1.0)
    assert ari(a, [5, 5, 7, 7]) == pytest.approx(1.0)
    assert nmi(a, [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    # ARI of ([0,0,1,1], [0,0,0,1]) by hand: index 1 = expected 2*3/6, so 0
    assert ari(a, [0, 0, 0, 1]) == pytest.approx(0.0)
    # rarest label wins
    assert dominant_label(np.array([[1, 1], [1, 0], [0, 0]])).tolist() == [1, 0, -1]


def test_fp16_only_on_cuda():
    import torch

    from xmhash.graph.similarity import compute_dtype

    assert compute_dtype(torch.device("cpu"), half=True) == torch.float32
    assert compute_dtype(torch.device("cuda"), half=True) == torch.float16
    assert compute_dtype(torch.device("cuda"), half=False) == torch.float32


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_knn_never_returns_self_even_with_duplicates(rng, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    x = rng.standard_normal((20, 5)).astype(np.float32)
    x = np.concatenate([x, x[:5]])  # exact duplicates tie with the item itself
    idx, sim = knn(x, 3, block=7, backend=backend)
    assert idx.shape == (25, 3)
    assert not (idx == np.arange(25)[:, None]).any()
    np.testing.assert_allclose(sim[:5, 0], 1.0, atol=1e-5)  # the duplicate is the best match


def test_methods_that_train_on_graphs_declare_them():
    import yaml
    from conftest import REPO

    from xmhash.graph.stage import BUILDERS
    from xmhash.methods import METHODS

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, cls in METHODS.items():
        assert bool(cls.graphs) == ("graph" in cls.needs), name
        for kind in cls.graphs:
            assert kind in BUILDERS and kind in config["graph"], (name, kind)
