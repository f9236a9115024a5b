"""VTM-UCH's similarity construction (enhash_vtmuch.md §A.3) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from xmhash.features.store import Ragged
from xmhash.graph.similarity import DenseTooLargeError
from xmhash.graph.vtmuch import (
    build_vtmuch,
    cdlib_labels,
    cdlib_node_order,
    densify_centres,
    joint_similarity,
    kmeans,
    matched_visions,
    object_affinity,
    padded_visions,
    population_threshold,
    row_minmax,
    same_label,
    text_similarity,
    union,
)


def ragged(groups):
    rows = [np.asarray(g, np.float32).reshape(-1, 2) for g in groups]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return Ragged(embeddings=np.concatenate(rows), offsets=offsets)


# regions: item 0 = object (1,0) + whole image (0.6,0.8); item 1 = (0,1) + (0.6,0.8);
# item 2 = (1,0) + (0,1)
REGIONS = ragged([[[1, 0], [0.6, 0.8]], [[0, 1], [0.6, 0.8]], [[1, 0], [0, 1]]])
# words: item 0 "looks like" (0.9,0.1) -> its object; item 1: (0.1,0.9) -> its object,
# (1,0) -> its whole image (cos 0.6 beats 0); item 2: (0.2,1) -> (0,1)
WORDS = ragged([[[0.9, 0.1]], [[0.1, 0.9], [1, 0]], [[0.2, 1]]])


def test_words_match_their_most_similar_vision_of_the_paired_image():
    m = matched_visions(WORDS, REGIONS)
    assert [r.tolist() for r in m] == [[0], [2, 3], [5]]


def test_text_similarity_is_label_set_intersection():
    # cluster label of each of the 6 visions
    vision_labels = np.array([0, 1, 2, 1, 0, 2])
    sy = text_similarity(matched_visions(WORDS, REGIONS), vision_labels, 3)
    # L0 = {0}, L1 = {2, 1}, L2 = {2}
    np.testing.assert_array_equal(sy, [[1, -1, -1], [-1, 1, 1], [-1, 1, 1]])
    # a text without words matches nothing: similar only to itself
    empty = text_similarity([np.array([0]), np.zeros(0, np.int64)], vision_labels, 3)
    np.testing.assert_array_equal(empty, [[1, -1], [-1, 1]])


def test_object_affinity_is_the_chamfer_mean_of_best_matches():
    regions = ragged([[[1, 0], [0, 1]], [[2, 0]], [[0.6, 0.8]]])
    v = padded_visions(regions, truncation=1)  # m = 2, items 1 and 2 padded
    assert v.shape == (3, 2, 2)
    # by hand: a_01 = (1 + 1) / 2; a_02 = (0.8 + 0.6 + 0.8) / 3; a_12 = (0.6 + 0.6) / 2
    raw = np.array([[1, 1, 2.2 / 3], [1, 1, 0.6], [2.2 / 3, 0.6, 1]])
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(object_affinity(v, block=2), expected, atol=1e-6)
    with pytest.raises(DenseTooLargeError):
        object_affinity(v, max_dense=4)


def test_truncation_keeps_the_first_visions_dropping_the_whole_image():
    regions = ragged([[[1, 0], [0, 1], [3, 4], [0, 2]], [[5, 0]]])
    v = padded_visions(regions, truncation=2)  # m = 4 // 2 = 2
    np.testing.assert_allclose(v[0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(v[1], [[1, 0], [0, 0]])


def test_population_threshold_uses_mean_plus_lambda_sample_std_of_the_upper_triangle():
    a = np.array([[1.0, 0.2, 0.8], [0.3, 1.0, 0.5], [0.9, 0.1, 1.0]])
    pop = np.array([0.2, 0.8, 0.5])
    # the official code's torch.std_mean is the sample std: 0.5 + 1.1 * 0.3 = 0.83
    # (the population std would give 0.769 and put a_02 = 0.8 above the threshold)
    thr = pop.mean() + 1.1 * pop.std(ddof=1)
    sx, mu, sigma = population_threshold(a, 1.1)
    assert mu == pytest.approx(0.5) and sigma == pytest.approx(0.3)
    np.testing.assert_array_equal(sx, np.where(a > thr, 1, -1))
    assert sx[0, 2] == -1 and sx[2, 0] == 1 and sx[1, 2] == -1


def test_union_and_joint_target():
    sy = np.array([[1, -1, -1], [-1, 1, 1], [-1, 1, 1]], np.int8)
    sx = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, 1]], np.int8)
    sf = union(sy, sx)
    np.testing.assert_array_equal(sf, [[1, 1, -1], [-1, 1, 1], [-1, 1, 1]])
    sc = same_label(np.array([0, 0, 1]))
    a = np.array([[1.0, 0.5, 0.0], [0.2, 1.0, 0.6], [0.1, 0.4, 0.7]])
    s = joint_similarity(sf, sc, a)
    # agree -> S^f; disagree at (1,0): row 1 of A rescaled: (0.2 - 0.2) / 0.8 * 2 - 1 = -1;
    # at (1,2): (0.6 - 0.2) / 0.8 * 2 - 1 = 0; at (2,1): (0.4 - 0.1) / 0.6 * 2 - 1 = 0
    np.testing.assert_allclose(s, [[1, 1, -1], [-1, 1, 0], [-1, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(row_minmax(np.array([[2.0, 2.0]])), [[0, 0]])


def test_densified_centres_split_an_outlier_onto_a_midpoint():
    g = np.array([[0.0], [1.0], [10.0], [11.0], [5.5]])
    # communities {0, 1, 4} and {2, 3}: centroids 2.17 and 10.5, midpoint 6.33; item 4
    # (5.5) is nearest the midpoint, then one Lloyd step keeps three groups
    refined = densify_centres(g, np.array([0, 0, 1, 1, 0]))
    sc = same_label(refined)
    assert sc[0, 1] == 1 and sc[2, 3] == 1
    assert sc[0, 4] == -1 and sc[2, 4] == -1 and sc[0, 2] == -1
    assert len(np.unique(refined)) == 3


def test_kmeans_is_seeded_and_finds_separated_blobs(rng):
    centres = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    truth = np.repeat(np.arange(3), 30)
    x = centres[truth] + rng.standard_normal((90, 2)).astype(np.float32)
    c1, l1 = kmeans(x, 3, seed=4)
    c2, l2 = kmeans(x, 3, seed=4)
    np.testing.assert_array_equal(l1, l2)
    # same partition as the truth up to renaming
    assert len({(a, b) for a, b in zip(l1, truth, strict=True)}) == 3


def test_build_vtmuch_on_demo_prefers_label_sharing_pairs(small_demo):
    rows = np.arange(300)
    f = small_demo
    g1 = build_vtmuch(
        f.image[rows], f.words.subset(rows), f.regions.subset(rows), n_clusters=8, seed=0
    )
    g2 = build_vtmuch(
        f.image[rows], f.words.subset(rows), f.regions.subset(rows), n_clusters=8, seed=0
    )
    np.testing.assert_array_equal(g1.target, g2.target)
    share = (f.labels[rows] @ f.labels[rows].T) > 0
    off = ~np.eye(300, dtype=bool)
    pos = (g1.target == 1) & off
    assert pos.any()
    # precision of the positive target pairs well above the base rate of sharing a label
    assert share[pos].mean() > share[off].mean() + 0.1
    assert g1.target.shape == (300, 300) and np.abs(g1.target).max() <= 1
    np.testing.assert_array_equal(np.diag(g1.union), 1)


# S^f of 5 items: {0, 3} and {1, 2, 4} are the two blocks; row 0 meets 3 before 1 and 2
SF5 = np.full((5, 5), -1, np.int8)
for block in ([0, 3], [1, 2, 4]):
    SF5[np.ix_(block, block)] = 1


def test_cdlib_node_order_is_networkx_insertion_order():
    nx = pytest.importorskip("networkx")
    rows, cols = np.nonzero(SF5 > 0)
    graph = nx.Graph()
    graph.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    np.testing.assert_array_equal(cdlib_node_order(SF5), list(graph.nodes()))
    np.testing.assert_array_equal(cdlib_node_order(SF5), [0, 3, 1, 2, 4])


def test_cdlib_labels_permute_the_partition_by_the_node_order():
    true = np.array([0, 1, 1, 0, 1])  # the blocks
    # vertex k is named after node order[k] = [0, 3, 1, 2, 4][k]: item 3 gets vertex 1's
    # community, item 1 vertex 2's, item 2 vertex 3's
    np.testing.assert_array_equal(cdlib_labels(SF5, true), [0, 1, 0, 1, 1])
    # a graph met in index order keeps its partition
    blocks = np.array([0, 0, 1, 1])
    ordered = np.where(blocks[:, None] == blocks[None, :], 1, -1)
    np.testing.assert_array_equal(cdlib_labels(ordered, blocks), blocks)


def test_build_vtmuch_cdlib_order_keeps_sf_and_permutes_communities(small_demo):
    rows = np.arange(200)
    f = small_demo
    args = (f.image[rows], f.words.subset(rows), f.regions.subset(rows))
    g = build_vtmuch(*args, n_clusters=8, seed=0)
    g_cd = build_vtmuch(*args, n_clusters=8, seed=0, cdlib_order=True)
    np.testing.assert_array_equal(g.union, g_cd.union)
    np.testing.assert_array_equal(g_cd.communities, cdlib_labels(g.union, g.communities))
    assert g_cd.stats["modularity_used"] < g.stats["modularity_used"]
    assert g.stats["modularity_used"] == pytest.approx(g.partition.modularity)


def test_cdlib_labels_match_cdlib_on_the_official_graph_construction():
    """Where cdlib is installed: the official call (networkx graph of the positive
    entries, row by row, then cdlib's leiden) returns exactly our partition permuted by
    ``cdlib_labels``, on a graph whose communities are unambiguous."""
    nx = pytest.importorskip("networkx")
    cdlib = pytest.importorskip("cdlib.algorithms")
    from xmhash.graph.communities import leiden, nmi, to_igraph
    from xmhash.graph.vtmuch import positive_graph

    rng = np.random.default_rng(0)
    blocks = rng.permutation(np.repeat(np.arange(4), 15))  # 4 cliques, items interleaved
    sf = np.where(blocks[:, None] == blocks[None, :], 1, -1).astype(np.int8)
    sf[0, 1] = sf[1, 0] = 1  # one edge between two cliques: insertion order != index order
    rows, cols = np.nonzero(sf > 0)
    graph = nx.Graph()
    graph.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    official = np.empty(len(sf), np.int64)
    for k, members in enumerate(cdlib.leiden(graph).communities):
        official[list(members)] = k
    ours = leiden(to_igraph(positive_graph(sf), weighted=False), seed=0, weighted=False)
    assert nmi(ours.labels, blocks) == pytest.approx(1.0)
    assert nmi(cdlib_labels(sf, ours.labels), official) == pytest.approx(1.0)
    assert nmi(official, blocks) < 0.9
