"""Online clustering memory: pure tensor functions for a global set of prototypes that is
updated batch by batch (used by ENHash's "summarised experience").

* :func:`sinkhorn`: balanced soft assignments of a batch to prototypes (SwAV-style
  Sinkhorn-Knopp; with 0 iterations it is a plain softmax);
* :func:`assignment_confidence`: hard cluster and margin (top-1 minus top-2 probability);
* :func:`kmeanspp`: k-means++ seeding (D^2 sampling), seeded by a generator;
* :func:`ema_prototypes`: the EMA "integration" step of feature prototypes;
* :func:`ema_code_prototypes`: the EMA of the mean member code of each cluster;
* :func:`hash_centers`: well-separated ±1 codes (Hadamard rows, else random codes with a
  large minimum Hamming distance, as in CSQ).

No I/O, no state: callers own the tensors (ENHash keeps them as module buffers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sinkhorn(scores: torch.Tensor, temperature: float, iters: int) -> torch.Tensor:
    """Soft assignments (b, C), rows summing to 1, from similarity ``scores`` (b, C).

    The kernel exp(scores / temperature) is alternately normalised so that every
    prototype receives the same mass over the batch and every item mass 1 (``iters``
    rounds of Sinkhorn-Knopp, as in SwAV); this keeps a batch from collapsing onto a few
    prototypes. ``iters = 0`` gives the row softmax.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (batch, clusters), got shape {tuple(scores.shape)}")
    logits = scores / temperature
    q = torch.exp(logits - logits.max())  # one global shift: keeps the ratios exact
    b, c = q.shape
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(0, keepdim=True).clamp_min(1e-12) / c  # each prototype: mass 1/C
        q = q / q.sum(1, keepdim=True).clamp_min(1e-12) / b  # each item: mass 1/b
    return q / q.sum(1, keepdim=True).clamp_min(1e-12)


def assignment_confidence(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard cluster (argmax) and confidence (largest minus second-largest probability)."""
    top = q.topk(min(2, q.shape[1]), dim=1)
    second = top.values[:, 1] if q.shape[1] > 1 else torch.zeros_like(top.values[:, 0])
    return top.indices[:, 0], top.values[:, 0] - second


def kmeanspp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeds: ``k`` rows of ``x`` (n, d), each drawn with probability
    proportional to its squared distance from the nearest seed so far."""
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n points, got k={k}, n={n}")
    xc = x.detach().float().cpu()
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    d2 = (xc - xc[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k: take unused rows in order
            rest = [i for i in range(n) if i not in set(chosen)]
            chosen.extend(rest[: k - len(chosen)])
            break
        nxt = int(torch.multinomial(d2 / total, 1, generator=generator))
        chosen.append(nxt)
        d2 = torch.minimum(d2, (xc - xc[nxt]).pow(2).sum(1))
    return x[torch.tensor(chosen, device=x.device)].clone()


def ema_prototypes(
    protos: torch.Tensor, z: torch.Tensor, q: torch.Tensor, gamma: float
) -> torch.Tensor:
    """p_k <- normalize(gamma p_k + (1 - gamma) sum_i q_ik z_i / m_k) for every prototype
    with batch mass m_k = sum_i q_ik > 0; the others are returned unchanged."""
    mass = q.sum(0)
    means = (q.t() @ z) / mass.clamp_min(1e-12)[:, None]
    moved = F.normalize(gamma * protos + (1 - gamma) * means, dim=1)
    return torch.where((mass > 0)[:, None], moved, protos)


def ema_code_prototypes(
    codes: torch.Tensor, h: torch.Tensor, assign: torch.Tensor, gamma: float
) -> torch.Tensor:
    """c_k <- normalize(gamma c_k + (1 - gamma) normalize(mean of h over members of k)),
    for clusters with at least one member in the batch (``assign`` holds hard clusters).

    Both the prototype and the member mean are unit vectors, so ``gamma`` is the share
    of the old direction whatever the code length."""
    c = codes.shape[0]
    onehot = F.one_hot(assign, c).to(h.dtype)  # (b, C)
    count = onehot.sum(0)
    mean = F.normalize(onehot.t() @ h, dim=1)  # the sum has the mean's direction
    moved = F.normalize(gamma * F.normalize(codes, dim=1) + (1 - gamma) * mean, dim=1)
    return torch.where((count > 0)[:, None], moved, codes)


def _hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def hash_centers(k: int, bits: int, generator: torch.Generator, tries: int = 200) -> torch.Tensor:
    """``k`` distinct ±1 codes of length ``bits`` (float, shape (k, bits)).

    When ``bits`` is a power of two and k <= 2 bits: the rows of [H; -H] for the
    Hadamard matrix H (pairwise Hamming distance bits/2, or bits for a row and its
    negation). Otherwise random codes accepted greedily when their Hamming distance to
    every accepted code is at least d, starting from d = bits/2 and lowering d whenever
    ``tries`` candidates in a row fail (CSQ's construction for the non-Hadamard case).
    """
    if k > 2**bits:
        raise ValueError(f"cannot draw {k} distinct codes of {bits} bits")
    if bits & (bits - 1) == 0 and k <= 2 * bits:
        h = _hadamard(bits)
        return torch.cat([h, -h])[:k].clone()
    accepted = torch.empty(0, bits)
    d, fails = bits // 2, 0
    while len(accepted) < k:
        block = torch.randint(0, 2, (256, bits), generator=generator).float() * 2 - 1
        for cand in block:
            if len(accepted) == k:
                break
            if len(accepted) == 0 or int((accepted != cand).sum(1).min()) >= d:
                accepted = torch.cat([accepted, cand[None]])
                fails = 0
            else:
                fails += 1
                if fails >= tries:
                    d, fails = max(d - 1, 1), 0
    return accepted
