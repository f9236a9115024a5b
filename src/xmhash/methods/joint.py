"""Joint (image + text) similarity constructions of the DJSRH family.

Pure functions: tensors in, tensors out, on whatever device the inputs live; no I/O,
no globals, no randomness. Features are the frozen per-item embeddings; every function
L2-normalises them itself (cosine similarity), as the official code does.

* :func:`djsrh_similarity`: DJSRH's in-batch joint-semantics matrix (Su et al., ICCV 2019;
  ``zzs1994/DJSRH`` train.py).
* :func:`jdsh_similarity`, :func:`dsdw_weight`, :func:`fit_dsdw_thresholds`: JDSH's
  joint-modal similarity with a cross-modal second-order term, and its
  distribution-based similarity decision and weighting (Liu et al., SIGIR 2020;
  ``KaiserLew/JDSH`` JDSH.py, config.py).
* :func:`graph_coherence_similarity`: DGCPN's fused pairwise + graph-neighbour-coherence
  similarity over the whole training set (Yu et al., AAAI 2021; ``Atmegal/DGCPN``),
  computed in row blocks so that only the two N x N results are ever held in memory.

The ``2 cos - 1`` maps of DJSRH/JDSH assume cosines in [0, 1] (the papers' AlexNet fc7
features and BoW vectors are non-negative); CLIP cosines can be negative, and the maps
are applied unchanged: they are affine, so only the targets' offset moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def cosine(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity matrix between the rows of ``a`` and of ``b`` (default ``a``)."""
    a = F.normalize(a.float(), dim=1)
    b = a if b is None else F.normalize(b.float(), dim=1)
    return a @ b.T


def _check_pair(image: torch.Tensor, text: torch.Tensor, where: str) -> None:
    if image.ndim != 2 or text.ndim != 2 or len(image) != len(text):
        raise ValueError(
            f"{where}: expected image (m, Di) and text (m, Dt) with the same m, "
            f"got {tuple(image.shape)} and {tuple(text.shape)}"
        )


# --------------------------------------------------------------------------- DJSRH


def djsrh_similarity(
    image: torch.Tensor, text: torch.Tensor, *, beta: float, eta: float, mu: float
) -> torch.Tensor:
    """DJSRH joint-semantics affinity of one batch, (m, m).

    S_I = 2 cos(F_I) - 1, S_T = 2 cos(F_T) - 1; S~ = beta S_I + (1 - beta) S_T;
    S = mu [(1 - eta) S~ + eta S~ S~^T / m] (the second-order term is the diffusion of S~
    over the batch; S~ is symmetric, so S~ S~^T = S~ S~).
    """
    _check_pair(image, text, "djsrh_similarity")
    m = len(image)
    s_i = 2 * cosine(image) - 1
    s_t = 2 * cosine(text) - 1
    s = beta * s_i + (1 - beta) * s_t
    return mu * ((1 - eta) * s + eta * (s @ s.T) / m)


# --------------------------------------------------------------------------- JDSH


def jdsh_similarity(
    image: torch.Tensor, text: torch.Tensor, *, alpha: float, beta: float, lamb: float
) -> torch.Tensor:
    """JDSH joint-modal similarity of one batch before DSDW weighting, (m, m).

    S_I = 2 cos(F_I) - 1, S_T = 2 cos(F_T) - 1; S_high = rownorm(S_I) rownorm(S_T)^T
    (rows L2-normalised: the cosine between item i's similarity profile in the image
    modality and item j's in the text modality); S' = alpha S_I + beta S_T +
    lamb (S_high + S_high^T) / 2.
    """
    _check_pair(image, text, "jdsh_similarity")
    s_i = 2 * cosine(image) - 1
    s_t = 2 * cosine(text) - 1
    s_high = F.normalize(s_i, dim=1) @ F.normalize(s_t, dim=1).T
    return alpha * s_i + beta * s_t + lamb * (s_high + s_high.T) / 2


@dataclass(frozen=True)
class DSDWThresholds:
    """Where JDSH's similarity distribution is split, and its range.

    Entries below ``loc_left - a * scale_left`` are confidently dissimilar, entries above
    ``loc_right + b * scale_right`` confidently similar; ``s_min``/``s_max`` are the
    smallest and largest similarity (the weights decay away from them).
    """

    loc_left: float
    scale_left: float
    loc_right: float
    scale_right: float
    s_min: float
    s_max: float


def fit_dsdw_thresholds(values: torch.Tensor, bins: int = 100) -> DSDWThresholds:
    """Fit the DSDW thresholds to a sample of joint similarities.

    The official configs hard-code numbers fitted to MIRFlickr/NUS-WIDE AlexNet+BoW
    similarities, with ``loc_left == loc_right``: the mode of the distribution, with one
    half-Gaussian on each side of it. This reproduces that fit for any features: the mode
    is the centre of the fullest of ``bins`` equal-width histogram bins; each side is
    reflected about the mode and fitted with a normal distribution (maximum likelihood:
    mean = mode, scale = root-mean-square distance to the mode); s_min/s_max are the
    sample's extremes.
    """
    v = values.detach().flatten().double().cpu()
    if v.numel() < 2 or not torch.isfinite(v).all():
        raise ValueError(
            f"fit_dsdw_thresholds: need >= 2 finite values, got {v.numel()} "
            f"(finite: {bool(torch.isfinite(v).all())})"
        )
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return DSDWThresholds(lo, 0.0, lo, 0.0, lo, hi)
    counts = torch.histc(v, bins=bins, min=lo, max=hi)
    width = (hi - lo) / bins
    mode = lo + (int(torch.argmax(counts)) + 0.5) * width
    left, right = v[v <= mode], v[v > mode]

    def half_scale(side: torch.Tensor) -> float:
        return float(torch.sqrt(((side - mode) ** 2).mean())) if side.numel() else 0.0

    return DSDWThresholds(
        loc_left=mode,
        scale_left=half_scale(left),
        loc_right=mode,
        scale_right=half_scale(right),
        s_min=lo,
        s_max=hi,
    )


def dsdw_weight(
    s: torch.Tensor, th: DSDWThresholds, *, a: float, b: float, l1: float, l2: float
) -> torch.Tensor:
    """JDSH's distribution-based similarity decision and weighting (a new tensor).

    Entries s < loc_left - a scale_left move down by l1 exp(-(s - s_min)) |s|; entries
    s > loc_right + b scale_right move up by l2 exp(s - s_max) |s|; others are unchanged.
    On the papers' features the dissimilar side is negative and the similar side positive,
    where this equals the official (1 + w) s; the |s| form keeps the intended direction
    when the split points fall on the other side of zero (CLIP features).
    """
    left = th.loc_left - a * th.scale_left
    right = th.loc_right + b * th.scale_right
    down = l1 * torch.exp(-(s - th.s_min)) * s.abs()
    up = l2 * torch.exp(s - th.s_max) * s.abs()
    return torch.where(s < left, s - down, torch.where(s > right, s + up, s))


# --------------------------------------------------------------------------- DGCPN


def graph_coherence_similarity(
    image: torch.Tensor,
    text: torch.Tensor,
    *,
    a1: float,
    a2: float,
    neighbours: int,
    scale: float,
    block: int = 1024,
) -> torch.Tensor:
    """DGCPN's similarity over a whole training set, (N, N).

    1. S_pair = a1 cos(F_T) + (1 - a1) cos(F_I).
    2. kNN graph: per row keep the ``neighbours`` largest entries of S_pair (the item
       itself among them, as in the official code), then drop the self entry; weights
       are the similarities, clamped at 0 (a no-op on the paper's non-negative
       features); rows are L1-normalised: P.
    3. Graph-neighbour coherence Q = scale P P^T (how much two items' weighted
       neighbourhoods overlap).
    4. S = 2 [(1 - a2) S_pair + a2 Q] - 1.

    The official code expresses ``neighbours`` as ``N - knn_number`` (5,000 - 3,000 =
    2,000) and uses scale = 4,000. Rows are processed ``block`` at a time; memory is two
    N x N float32 matrices (P and the result) plus one block.
    """
    _check_pair(image, text, "graph_coherence_similarity")
    n = len(image)
    if not 1 <= neighbours <= n:
        raise ValueError(
            f"graph_coherence_similarity: neighbours={neighbours} must be in [1, N={n}]"
        )
    fi = F.normalize(image.float(), dim=1)
    ft = F.normalize(text.float(), dim=1)
    s = torch.empty(n, n, dtype=torch.float32, device=image.device)
    p = torch.zeros(n, n, dtype=torch.float32, device=image.device)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        blk = a1 * (ft[rows] @ ft.T) + (1 - a1) * (fi[rows] @ fi.T)
        s[rows] = blk
        vals, idx = torch.topk(blk, neighbours, dim=1)
        p[rows].scatter_(1, idx, vals.clamp_min(0))
        r = torch.arange(rows.start, rows.stop, device=image.device)
        p[r, r] = 0
    p /= p.sum(dim=1, keepdim=True).clamp_min(1e-12)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        s[rows] = 2 * ((1 - a2) * s[rows] + a2 * scale * (p[rows] @ p.T)) - 1
    return s


def neighbours_of(fraction: float, n: int) -> int:
    """The neighbour count for a fraction of a training set of n items (at least 2:
    the item itself, dropped, and one neighbour)."""
    return min(n, max(2, int(math.floor(fraction * n + 0.5))))
