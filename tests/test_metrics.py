"""Golden tests of the metric protocol: hand-computed cases and brute-force parity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xmhash import bits as B
from xmhash import metrics as M

# ----------------------------------------------------------------- brute-force references
# Independent, slow, obvious implementations: one Python loop per query, written from the
# definitions in the metrics module docstring.


def ref_ranking(dist_row, tie_rank):
    return sorted(range(len(dist_row)), key=lambda j: (dist_row[j], tie_rank[j]))


def ref_ap_all(rel_sorted):
    hits, total = 0, 0.0
    for k, r in enumerate(rel_sorted, 1):
        if r:
            hits += 1
            total += hits / k
    return total / hits if hits else None


def ref_ap_k_standard(rel_sorted, k):
    r_total = sum(rel_sorted)
    if r_total == 0:
        return None
    hits, total = 0, 0.0
    for i, r in enumerate(rel_sorted[:k], 1):
        if r:
            hits += 1
            total += hits / i
    return total / min(r_total, k)


def ref_ap_k_djsrh(rel_sorted, k):
    hits, total = 0, 0.0
    for i, r in enumerate(rel_sorted[:k], 1):
        if r:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def ref_ap_k_dcmh(rel_sorted, k):
    r_total = sum(rel_sorted)
    if r_total == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, r in enumerate(rel_sorted, 1):
        if r and hits < k:
            hits += 1
            total += hits / i
    return total / min(k, r_total)


def brute_force(q, db, ql, dl, bits, ks, pn, tie_seed):
    qb, dbb = B.unpack(q, bits), B.unpack(db, bits)
    tie_rank = M.tie_permutation(len(db), tie_seed)
    out = {
        "map@all": [],
        **{f"map@{k}": [] for k in ks},
        **{f"map@{k}_djsrh": [] for k in ks},
        **{f"map@{k}_dcmh": [] for k in ks},
        **{f"p@{n}": [] for n in pn},
    }
    for i in range(len(qb)):
        dist = [int((qb[i] != dbb[j]).sum()) for j in range(len(dbb))]
        rel = [bool((ql[i] & dl[j]).any()) for j in range(len(dbb))]
        rs = [rel[j] for j in ref_ranking(dist, tie_rank)]
        out["map@all"].append(ref_ap_all(rs))
        for k in ks:
            out[f"map@{k}"].append(ref_ap_k_standard(rs, k))
            out[f"map@{k}_djsrh"].append(ref_ap_k_djsrh(rs, k))
            out[f"map@{k}_dcmh"].append(ref_ap_k_dcmh(rs, k))
        for n in pn:
            nn = min(n, len(rs))
            out[f"p@{n}"].append(sum(rs[:nn]) / nn)
    return {k: float(np.mean([x for x in v if x is not None])) for k, v in out.items()}


# ----------------------------------------------------------------- bits and distances


def test_binarize_maps_zero_to_plus_one():
    assert B.binarize(np.array([[-0.5, 0.0, 1e-9, -1e-9]])).tolist() == [[-1, 1, 1, -1]]


def test_pack_unpack_round_trip_odd_bits(rng):
    codes = np.where(rng.random((7, 13)) < 0.5, -1, 1).astype(np.int8)
    packed = B.pack(codes)
    assert packed.shape == (7, 2) and packed.dtype == np.uint8
    assert (B.unpack(packed, 13) == codes).all()


def test_hamming_equals_bit_count(rng):
    for bits in (5, 16, 64, 100):
        a = np.where(rng.random((9, bits)) < 0.5, -1, 1)
        b = np.where(rng.random((11, bits)) < 0.5, -1, 1)
        expect = (a[:, None, :] != b[None, :, :]).sum(-1)
        assert (M.hamming(B.pack(a), B.pack(b)) == expect).all()


def test_hamming_rejects_different_widths():
    with pytest.raises(ValueError, match="code widths differ"):
        M.hamming(np.zeros((1, 2), np.uint8), np.zeros((1, 4), np.uint8))


# ----------------------------------------------------------------- hand-computed cases


def _codes(rows):
    return B.pack(np.array(rows))


def test_hand_computed_ties_and_tie_aware():
    # one query 00; database at distances 0, 1, 1, 2 with relevance 0, 1, 0, 1
    q = _codes([[-1, -1]])
    db = _codes([[-1, -1], [1, -1], [-1, 1], [1, 1]])
    ql = np.array([[1, 0]])
    dl = np.array([[0, 1], [1, 0], [0, 1], [1, 1]])
    # ties between items 1 and 2 (both at distance 1): the tie permutation decides
    tie_rank = M.tie_permutation(4, 0)
    order = M.rank_order(M.hamming(q, db), tie_rank)[0].tolist()
    assert order[0] == 0 and order[3] == 3 and sorted(order[1:3]) == [1, 2]
    res = M.evaluate(q, db, ql, dl, 2, ks=(2,), pn=(1, 2), tie_seed=0)
    if order[1] == 1:  # relevant item first within the tie: ranks 2 and 4 -> (1/2 + 2/4) / 2
        assert res["map@all"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    else:  # ranks 3 and 4 -> (1/3 + 2/4) / 2
        assert res["map@all"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    # tie-aware: average of the two orderings, whatever the tie rule
    assert res["map@all_tie_aware"] == pytest.approx(
        ((1 / 2 + 2 / 4) / 2 + (1 / 3 + 2 / 4) / 2) / 2
    )
    assert res["p@n"]["1"] == 0.0


def test_query_without_relevant_items():
    q = _codes([[1, 1], [-1, -1]])
    db = _codes([[1, 1], [-1, -1], [1, -1]])
    ql = np.array([[1, 0], [0, 1]])
    dl = np.array([[1, 0], [1, 0], [1, 0]])  # query 2 shares no label with anything
    res = M.evaluate(q, db, ql, dl, 2, ks=(2,), pn=(2,), tie_seed=0)
    assert res["n_query_without_relevant"] == 1
    # mAP@all leaves query 2 out: query 1 has all 3 items relevant -> AP = 1
    assert res["map@all"] == pytest.approx(1.0)
    # djsrh counts it as 0: (1 + 0) / 2
    assert res["map@2_djsrh"] == pytest.approx(0.5)
    assert res["map@2_dcmh"] == pytest.approx(0.5)
    # P@2 averages over all queries: (2/2 + 0) / 2
    assert res["p@n"]["2"] == pytest.approx(0.5)


def test_k_larger_than_database_is_clipped():
    q = _codes([[1, 1, 1]])
    db = _codes([[1, 1, 1], [-1, -1, -1], [1, 1, -1]])
    ql = np.array([[1]])
    dl = np.array([[1], [1], [0]])
    # ranking by distance: item0 (0, rel), item2 (1, not), item1 (3, rel)
    res = M.evaluate(q, db, ql, dl, 3, ks=(100,), pn=(100,), tie_seed=0)
    ap = (1 / 1 + 2 / 3) / 2
    assert res["map@all"] == pytest.approx(ap)
    assert res["map@100"] == pytest.approx(ap)  # min(R, K) = R
    assert res["map@100_djsrh"] == pytest.approx(ap)
    assert res["p@n"]["100"] == pytest.approx(2 / 3)


def test_map_at_k_definitions_differ_as_documented():
    # ranking: rel at ranks 1 and 5, K = 2, R = 2
    q = _codes([[1, 1, 1, 1]])
    db = _codes([[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, -1, -1], [1, -1, -1, -1], [-1, -1, -1, -1]])
    ql = np.array([[1]])
    dl = np.array([[1], [0], [0], [0], [1]])
    res = M.evaluate(q, db, ql, dl, 4, ks=(2,), pn=(), tie_seed=0)
    assert res["map@2"] == pytest.approx(1 / 2)  # (1/1) / min(R=2, K=2)
    assert res["map@2_djsrh"] == pytest.approx(1.0)  # one hit in the top 2 -> 1/1
    assert res["map@2_dcmh"] == pytest.approx((1 / 1 + 2 / 5) / 2)  # first 2 relevant
    assert res["map@all"] == pytest.approx((1 / 1 + 2 / 5) / 2)


def test_pr_curve_by_radius_hand_computed():
    q = _codes([[1, 1]])
    db = _codes([[1, 1], [1, -1], [-1, -1]])
    ql = np.array([[1]])
    dl = np.array([[1], [0], [1]])
    pr = M.evaluate(q, db, ql, dl, 2, ks=(), pn=(), tie_seed=0)["pr"]
    assert pr["radius"] == [0, 1, 2]
    assert pr["precision"] == pytest.approx([1.0, 0.5, 2 / 3])
    assert pr["recall"] == pytest.approx([0.5, 0.5, 1.0])
    assert pr["coverage"] == [1.0, 1.0, 1.0]


def test_pr_empty_retrieval_has_no_precision():
    q = _codes([[1, 1]])
    db = _codes([[-1, -1], [-1, 1]])
    pr = M.evaluate(q, db, np.array([[1]]), np.array([[1], [1]]), 2, ks=(), pn=())["pr"]
    assert np.isnan(pr["precision"][0]) and pr["coverage"][0] == 0.0
    assert pr["recall"][0] == 0.0 and pr["recall"][2] == 1.0


# ----------------------------------------------------------------- parity and properties


@pytest.mark.parametrize("bits", [8, 16, 33])
def test_parity_with_brute_force_on_random_codes(rng, bits):
    nq, ndb, c = 12, 60, 5
    q, db = M.random_codes(nq, bits, 1), M.random_codes(ndb, bits, 2)
    ql = (rng.random((nq, c)) < 0.3).astype(np.uint8)
    dl = (rng.random((ndb, c)) < 0.3).astype(np.uint8)
    ks, pn = (1, 7, 50, 1000), (1, 5, 60, 100)
    fast = M.evaluate(q, db, ql, dl, bits, ks=ks, pn=pn, tie_seed=3, block=5)
    slow = brute_force(q, db, ql, dl, bits, ks, pn, tie_seed=3)
    for key, value in slow.items():
        got = fast["p@n"][key[2:]] if key.startswith("p@") else fast[key]
        assert got == pytest.approx(value, abs=1e-12), key


def test_tie_aware_ap_equals_mean_over_all_tie_orderings(rng):
    bits = 3
    for _ in range(100):
        n = int(rng.integers(1, 7))
        dist = rng.integers(0, bits + 1, size=(1, n)).astype(np.uint16)
        rel = rng.random((1, n)) < 0.5
        if not rel.any():
            continue
        aps = []
        for perm in itertools.permutations(range(n)):
            d = dist[0, list(perm)]
            if np.all(np.diff(d.astype(int)) >= 0):
                aps.append(ref_ap_all(rel[0, list(perm)].tolist()))
        assert M.tie_aware_ap(dist, rel, bits)[0] == pytest.approx(np.mean(aps), abs=1e-12)


def test_tie_rule_is_deterministic_and_seeded(rng):
    q, db = M.random_codes(20, 8, 1), M.random_codes(300, 8, 2)
    ql = (rng.random((20, 4)) < 0.4).astype(np.uint8)
    dl = (rng.random((300, 4)) < 0.4).astype(np.uint8)
    a = M.evaluate(q, db, ql, dl, 8, ks=(10,), pn=(), tie_seed=0)
    b = M.evaluate(q, db, ql, dl, 8, ks=(10,), pn=(), tie_seed=0)
    c = M.evaluate(q, db, ql, dl, 8, ks=(10,), pn=(), tie_seed=1)
    assert a == b
    assert a["map@10"] != c["map@10"]  # 8-bit codes: huge tie blocks, so the seed matters
    assert a["map@all_tie_aware"] == pytest.approx(c["map@all_tie_aware"])


def test_expected_random_map_matches_random_codes(rng):
    """The analytic chance floor is the mean mAP of many random code draws."""
    ql = (rng.random((40, 6)) < 0.3).astype(np.uint8)
    dl = (rng.random((200, 6)) < 0.3).astype(np.uint8)
    floor = M.expected_random_map(ql, dl)
    draws = [
        M.evaluate(
            M.random_codes(40, 16, s),
            M.random_codes(200, 16, s + 99),
            ql,
            dl,
            16,
            ks=(),
            pn=(),
            tie_seed=s,
        )["map@all"]
        for s in range(30)
    ]
    assert np.mean(draws) == pytest.approx(floor, abs=3 * np.std(draws) / np.sqrt(30) + 1e-3)


def test_chance_floor_memory_is_bounded_like_the_evaluation(rng):
    """The chance floor of a large database works in blocks of at most BLOCK_ENTRIES
    (query x database) entries, as the evaluation does, not 1,024 queries x the whole
    database at once; blocking does not change its value."""
    import tracemalloc

    n_db = 40_000
    ql = (rng.random((1024, 10)) < 0.2).astype(np.uint8)
    dl = (rng.random((n_db, 10)) < 0.2).astype(np.uint8)
    tracemalloc.start()
    floor = M.expected_random_map(ql, dl)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # one block's float32 product and boolean relevance, plus the label copies
    bound = M.BLOCK_ENTRIES * 5 + dl.size * 4 * 2 + (1 << 20)
    assert peak < bound, (peak, bound)
    assert floor == pytest.approx(M.expected_random_map(ql[:100], dl), abs=0.02)
    assert floor == M.expected_random_map(ql, dl, block=7)


def test_perfect_codes_score_one():
    labels = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0, 1, 2, 3]]
    codes = np.where(labels @ (np.eye(4) * 2 - 1) > 0, 1, -1)  # one code per class
    packed = B.pack(codes)
    res = M.evaluate(packed, packed, labels, labels, 4, ks=(2,), pn=(2,))
    assert res["map@all"] == pytest.approx(1.0)
    assert res["map@all_tie_aware"] == pytest.approx(1.0)
    assert res["map@2"] == pytest.approx(1.0) and res["p@n"]["2"] == pytest.approx(1.0)


def test_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="disagree in length"):
        M.evaluate(
            np.zeros((3, 1), np.uint8),
            np.zeros((4, 1), np.uint8),
            np.zeros((2, 2)),
            np.zeros((4, 2)),
            8,
        )


def test_no_queries_is_a_clear_error():
    with pytest.raises(ValueError, match="nothing to evaluate: 0 query and 4 database codes"):
        M.evaluate(
            np.zeros((0, 1), np.uint8),
            np.zeros((4, 1), np.uint8),
            np.zeros((0, 2)),
            np.ones((4, 2)),
            8,
        )
