"""The DJSRH-family joint similarities (xmhash.methods.joint): hand-computed cases and
brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmhash.methods.joint import (
    DSDWThresholds,
    cosine,
    djsrh_similarity,
    dsdw_weight,
    fit_dsdw_thresholds,
    graph_coherence_similarity,
    jdsh_similarity,
    neighbours_of,
)

E = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # orthogonal: cos = I, 2 cos - 1 = [[1,-1],[-1,1]]
SAME = torch.tensor([[1.0, 0.0], [2.0, 0.0]])  # parallel (unnormalised): cos = ones


def test_cosine_normalises_rows():
    torch.testing.assert_close(cosine(SAME), torch.ones(2, 2))
    torch.testing.assert_close(cosine(E, SAME), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))


def test_djsrh_similarity_by_hand():
    # S_I = [[1,-1],[-1,1]], S_T = ones; beta = 0.5 -> S~ = I; S~ S~^T / m = I / 2;
    # S = 1.5 * (0.6 I + 0.4 I / 2) = 1.2 I
    s = djsrh_similarity(E, SAME, beta=0.5, eta=0.4, mu=1.5)
    torch.testing.assert_close(s, 1.2 * torch.eye(2))


def test_djsrh_similarity_matches_the_formula_on_random_features(rng):
    fi, ft = (torch.tensor(rng.standard_normal((7, 5)), dtype=torch.float32) for _ in range(2))
    s = djsrh_similarity(fi, ft, beta=0.9, eta=0.4, mu=1.5)
    ci = np.array(
        [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in fi.numpy()] for a in fi.numpy()]
    )
    ct = np.array(
        [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in ft.numpy()] for a in ft.numpy()]
    )
    st = 0.9 * (2 * ci - 1) + 0.1 * (2 * ct - 1)
    ref = 1.5 * (0.6 * st + 0.4 * st @ st.T / 7)
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(s, s.T, atol=1e-6)


def test_jdsh_similarity_by_hand():
    # image = text = E: S_I = S_T = [[1,-1],[-1,1]]; S_high = rownorm(S_I) rownorm(S_T)^T
    # = S_I S_I^T / 2 = S_I; S' = (alpha + beta + lamb) S_I
    s = jdsh_similarity(E, E, alpha=0.5, beta=0.1, lamb=0.4)
    torch.testing.assert_close(s, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    # text all parallel: S_T = ones, rownorm(S_T) = ones/sqrt2, S_high = 0
    s = jdsh_similarity(E, SAME, alpha=0.5, beta=0.1, lamb=0.4)
    torch.testing.assert_close(s, 0.5 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) + 0.1)


def test_jdsh_second_order_term_is_the_cross_modal_profile_cosine(rng):
    fi, ft = (torch.tensor(rng.standard_normal((6, 4)), dtype=torch.float32) for _ in range(2))
    s = jdsh_similarity(fi, ft, alpha=0.0, beta=0.0, lamb=1.0)
    si, st = (2 * cosine(fi) - 1).numpy(), (2 * cosine(ft) - 1).numpy()
    for i in range(6):
        for j in range(6):
            hij = si[i] @ st[j] / np.linalg.norm(si[i]) / np.linalg.norm(st[j])
            hji = si[j] @ st[i] / np.linalg.norm(si[j]) / np.linalg.norm(st[i])
            assert s[i, j].item() == pytest.approx((hij + hji) / 2, abs=1e-5)


TH = DSDWThresholds(
    loc_left=0.0, scale_left=0.1, loc_right=0.0, scale_right=0.1, s_min=-1.0, s_max=1.0
)


def test_dsdw_weight_by_hand():
    # left = -0.1, right = 0.1 (a = b = 1)
    s = torch.tensor([-1.0, -0.5, -0.05, 0.05, 0.5, 1.0])
    out = dsdw_weight(s, TH, a=1.0, b=1.0, l1=0.5, l2=0.5)
    expected = [
        -1 - 0.5 * 1.0 * 1.0,  # exp(-(s - s_min)) = exp(0)
        -0.5 - 0.5 * math.exp(-0.5) * 0.5,
        -0.05,
        0.05,  # inside (left, right): unchanged
        0.5 + 0.5 * math.exp(-0.5) * 0.5,
        1 + 0.5 * 1.0 * 1.0,
    ]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert s[0] == -1.0  # input untouched


def test_dsdw_weight_equals_the_official_form_on_the_papers_side_of_zero():
    # official: s * (1 + l1 exp(-(s - MIN))) on the left, s * (1 + l2 exp(s - MAX)) right;
    # the thresholds of the MIRFlickr config put the left side below zero
    th = DSDWThresholds(-0.49, 0.019, -0.49, 0.088, -0.52, 0.68)
    s = torch.linspace(-0.52, 0.68, 200)
    left, right = -0.49 - 2 * 0.019, -0.49 + 4 * 0.088
    official = torch.where(
        s < left,
        s * (1 + 0.1 * torch.exp(-(s + 0.52))),
        torch.where(s > right, s * (1 + 0.2 * torch.exp(s - 0.68)), s),
    )
    mask = (s < left) | (s > max(right, 0.0)) | ((s >= left) & (s <= right))
    out = dsdw_weight(s, th, a=2, b=4, l1=0.1, l2=0.2)
    torch.testing.assert_close(out[mask], official[mask])


def test_dsdw_weight_moves_confident_pairs_apart_even_above_zero():
    # CLIP-like: every similarity positive; the dissimilar side must still go down
    th = DSDWThresholds(0.4, 0.05, 0.4, 0.05, 0.1, 0.9)
    s = torch.tensor([0.2, 0.4, 0.8])
    out = dsdw_weight(s, th, a=1, b=1, l1=0.2, l2=0.2)
    assert out[0] < s[0] and out[1] == s[1] and out[2] > s[2]


def test_fit_dsdw_thresholds_recovers_two_half_gaussians():
    g = torch.Generator().manual_seed(0)
    mode, sl, sr = -0.3, 0.05, 0.2
    left = mode - torch.randn(200_000, generator=g).abs() * sl
    right = mode + torch.randn(200_000, generator=g).abs() * sr
    th = fit_dsdw_thresholds(torch.cat([left, right]))
    width = (th.s_max - th.s_min) / 100
    assert th.loc_left == th.loc_right
    assert abs(th.loc_left - mode) <= width
    assert th.scale_left == pytest.approx(sl, abs=width)
    assert th.scale_right == pytest.approx(sr, abs=width)
    assert th.s_min == pytest.approx(float(left.min())) and th.s_max == pytest.approx(
        float(right.max())
    )


def test_fit_dsdw_thresholds_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        fit_dsdw_thresholds(torch.tensor([0.0, float("nan"), 1.0]))


def _graph_reference(fi, ft, a1, a2, k, scale):
    """Plain loops: kNN (self included, then dropped), L1 rows, P P^T, fuse."""
    n = len(fi)
    fi = fi / np.linalg.norm(fi, axis=1, keepdims=True)
    ft = ft / np.linalg.norm(ft, axis=1, keepdims=True)
    s_pair = a1 * ft @ ft.T + (1 - a1) * fi @ fi.T
    p = np.zeros((n, n))
    for i in range(n):
        order = sorted(range(n), key=lambda j: -s_pair[i, j])[:k]
        for j in order:
            if j != i:
                p[i, j] = max(s_pair[i, j], 0.0)
        p[i] /= p[i].sum()
    return 2 * ((1 - a2) * s_pair + a2 * scale * p @ p.T) - 1


@pytest.mark.parametrize("block", [1, 3, 1024])
def test_graph_coherence_matches_the_reference_for_any_block(rng, block):
    fi = rng.random((11, 6)).astype(np.float32)  # non-negative, like the paper's features
    ft = rng.random((11, 5)).astype(np.float32)
    s = graph_coherence_similarity(
        torch.from_numpy(fi),
        torch.from_numpy(ft),
        a1=0.3,
        a2=0.4,
        neighbours=5,
        scale=8.0,
        block=block,
    )
    ref = _graph_reference(fi.astype(np.float64), ft.astype(np.float64), 0.3, 0.4, 5, 8.0)
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(s, s.T, atol=1e-5)


def test_graph_coherence_by_hand():
    # 3 items, image only (a1 = 0); items 0 and 1 identical, item 2 orthogonal.
    fi = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # a2 = 0: plain pairwise similarity mapped to [-1, 1]
    s = graph_coherence_similarity(fi, fi, a1=0.0, a2=0.0, neighbours=2, scale=1.0)
    torch.testing.assert_close(s, 2 * cosine(fi) - 1)
    # a2 = 1, 2 neighbours (self + one): rows of P: 0 -> {1}, 1 -> {0}; row 2 keeps itself
    # and a zero-similarity item, so it is empty. Q = P P^T = diag(1, 1, 0).
    s = graph_coherence_similarity(fi, fi, a1=0.0, a2=1.0, neighbours=2, scale=1.0)
    torch.testing.assert_close(s, 2 * torch.diag(torch.tensor([1.0, 1.0, 0.0])) - 1)


def test_graph_coherence_rejects_bad_input():
    with pytest.raises(ValueError, match="neighbours=0"):
        graph_coherence_similarity(E, E, a1=0.1, a2=0.3, neighbours=0, scale=1.0)
    with pytest.raises(ValueError, match="same m"):
        graph_coherence_similarity(E, E[:1], a1=0.1, a2=0.3, neighbours=1, scale=1.0)


def test_neighbours_of_follows_the_paper_ratio():
    assert neighbours_of(0.4, 5000) == 2000  # the official 5,000 - knn_number 3,000
    assert neighbours_of(0.4, 3) == 2 and neighbours_of(1.0, 10) == 10
