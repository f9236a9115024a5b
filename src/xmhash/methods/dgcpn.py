"""DGCPN: Deep Graph-neighbor Coherence Preserving Network.

Yu, Zhou, Zhan, Tao, "Deep Graph-neighbor Coherence Preserving Network for Unsupervised
Cross-modal Hashing", AAAI 2021. Official code: github.com/Atmegal/DGCPN (train.py,
train_div.py, models.py at 9f62c56); ``benchmarks/official/dgcpn.py`` runs it beside this
implementation.

Before training, one similarity over the whole training set
(:func:`xmhash.methods.joint.graph_coherence_similarity`): the pairwise similarity
S_pair = a1 cos F_T + (1 - a1) cos F_I, a kNN graph of it (k neighbours per item, rows
L1-normalised: P), the graph-neighbour coherence Q = scale P P^T, and
S = 2 [(1 - a2) S_pair + a2 Q] - 1. Per batch, with B = rownorm(tanh(h)) and I the
identity (off-diagonal mask 1 - I):

    L = MSE(diag(B_I B_T^T), K)                                   (paired codes agree)
      + dw [MSE_off(B_T B_T^T, S) + MSE_off(B_I B_T^T, S) + MSE_off(B_I B_I^T, S)]
      + cw [MSE(B_I B_T^T, B_I B_I^T) + MSE(B_I B_T^T, B_T B_T^T)
            + MSE(B_I B_I^T, B_T B_T^T) + MSE(B_I B_T^T, B_T B_I^T)]  (consistency)

Each batch makes three updates ("half-real, half-binary"), as ``Session.train`` does:
both networks on L; then, from one new forward pass of both networks, the image network
on L with those text codes made binary (fixed), and the text network with those image
codes (from before the image step) made binary. Networks: d -> 4096 -> ReLU -> dropout
0.5 -> bits -> tanh; the text network's output weights start from N(0, 0.3)
(``text_init_std``). SGD lr 0.005, momentum 0.9, weight decay 5e-4 (one optimiser with a
group per network: the same steps as the official two), batch 32 with the last short
batch kept, at most 100 epochs; a1 = 0.01, a2 = 0.3, k = 2,000 of 5,000 (the code's
knn_number = 3,000 drops the 3,000 least similar), scale = 4,000, K = 1.5, dw = cw = 1.

Deviations from the official code (config/paper/dgcpn.yaml sets everything else to the
official values):

* Inputs are cached, frozen features (CLIP by default), not the paper's VGG-19 fc7 and
  BoW; ``unit_inputs`` (on by default, off in the paper config: the official networks
  take the raw features) L2-normalises each input and multiplies it by sqrt(d).
* Non-negative features (``centre_inputs: auto``; ``never`` in the paper config) are
  centred on their training mean, for the networks and for the similarity S. On
  Wikipedia's SIFT / LDA features 31 % of the text bits were the same for every item
  (flagged collapsed in every run), for two reasons, both measured at 16 bits:

  - the raw cosines of non-negative rows are all positive (mean 0.38 between SIFT
    histograms), so S = 2 [...] - 1 had a mean of +0.10 over all pairs of a 10-class set
    where 11 % of the pairs are related: a target that codes can only meet with bits
    shared by every item (with it centred, the mean is -0.5 and no bit is constant);
  - the official text output layer N(0, 0.3) (``text_init_std``) is scaled for the
    official unit-norm inputs; with ``unit_inputs`` (inputs sqrt(d) times larger) the
    text pre-activations started at std 3.3 instead of about 0.25 (the image network's),
    53 % of the text outputs were saturated (|tanh| > 0.99, no gradient) at
    initialisation and 82 % after training, so a bit constant at the start stayed so.
    The N(0, 0.3) initialisation therefore applies with ``unit_inputs`` off only.

  What S is built from stays the official a1 = 0.01 mix, almost only the image cosine:
  on SIFT histograms that carries little of the classes (AUC of same-class pairs 0.53,
  against 0.88 for the LDA topics' cosine), which bounds DGCPN on such features.
* The neighbour count and the coherence scale are relative to the training-set size:
  ``neighbours`` is a fraction (0.4 = 2,000 / 5,000) and the scale is
  ``coherence_scale`` x k (2 x 2,000 = 4,000), so they mean the same thing for any N and
  equal the official values at N = 5,000. Edge weights are clamped at 0 (CLIP cosines can
  be negative; on the paper's non-negative features this changes nothing).
* Model selection: the trainer's (fixed epochs by default; ``select: val`` in the paper
  config keeps the best epoch of the validation rows ranked against themselves). The
  official code ranks the retrieval set for the validation queries after every epoch,
  keeps the best and stops after 11 passes without a better one. Measured in the
  harness (3 seeds, 128 training items): the official stopping rule applied to our own
  validation curve keeps epochs 42 / 30 / 24 instead of 94 / 61 / 52 and changes our test
  mAP@all by -0.002 (I->T) and -0.000 (T->I) on average.
* Random streams (initialisation, dropout, batch order) come from seeded torch
  generators; the official code sets no seed, so two of its runs differ too.
* Binary codes in the alternating steps and the final codes are x >= 0 -> +1 (the
  official code uses sign, where sign(0) = 0).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xmhash.methods.base import (
    Batch,
    DeepParams,
    TrainData,
    binary,
    detached,
    mlp,
)
from xmhash.methods.djsrh import HashNetworks
from xmhash.methods.joint import graph_coherence_similarity, neighbours_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DGCPNParams(DeepParams):
    epochs: int = 100  # paper: at most 100 (early stopping on validation)
    batch_size: int = 32
    hidden: int = 4096  # hidden width of both hash networks
    dropout: float = 0.5
    lr: float = 0.005  # SGD learning rate of both networks
    momentum: float = 0.9
    weight_decay: float = 0.0005
    a1: float = 0.01  # text share of the pairwise similarity
    a2: float = 0.3  # share of the graph-neighbour coherence in S
    neighbours: float = 0.4  # kNN graph: neighbours per item, as a fraction of N (2000/5000)
    coherence_scale: float = 2.0  # Q = coherence_scale * k * P P^T (official 4000 = 2 * 2000)
    k_pair: float = 1.5  # target of the paired codes' cosine ("K")
    dis_weight: float = 1.0  # weight of the similarity reconstructions ("dw")
    cons_weight: float = 1.0  # weight of the consistency terms ("cw")
    half_binary: bool = True  # the two extra updates against the other modality's binary codes
    unit_inputs: bool = True  # L2-normalise inputs and scale by sqrt(d)
    text_init_std: float = (
        0.3  # with unit_inputs off: text output layer's initial std; 0: PyTorch's
    )
    centre_inputs: str = "auto"  # network inputs minus the training mean: auto, always, never


def dgcpn_terms(
    code_i: torch.Tensor,
    code_t: torch.Tensor,
    s: torch.Tensor,
    *,
    k_pair: float,
    dis_weight: float,
    cons_weight: float,
) -> dict[str, torch.Tensor]:
    """DGCPN's loss terms for (relaxed or binary) codes (m, c) and the target S (m, m)."""
    b_i = F.normalize(code_i, dim=1)
    b_t = F.normalize(code_t, dim=1)
    ii, tt, it = b_i @ b_i.T, b_t @ b_t.T, b_i @ b_t.T
    off = 1 - torch.eye(len(s), dtype=s.dtype, device=s.device)
    pair = F.mse_loss(it.diagonal(), torch.full_like(it.diagonal(), k_pair))
    dis = (
        F.mse_loss(tt * off, s * off)
        + F.mse_loss(it * off, s * off)
        + F.mse_loss(ii * off, s * off)
    )
    cons = F.mse_loss(it, ii) + F.mse_loss(it, tt) + F.mse_loss(ii, tt) + F.mse_loss(it, it.T)
    return {
        "loss": pair + dis_weight * dis + cons_weight * cons,
        "pair": pair,
        "distance": dis,
        "consistency": cons,
    }


class DGCPN(HashNetworks):
    name = "dgcpn"
    Params = DGCPNParams
    drop_last = False  # the official loader keeps the last short batch
    citation = "Yu, Zhou, Zhan, Tao, AAAI 2021 (DGCPN)"

    params: DGCPNParams
    similarity: torch.Tensor | None = None

    def build_networks(self) -> None:
        p = self.params
        self.net.image = mlp([self.image_dim, p.hidden, self.bits], dropout=p.dropout)
        self.net.text = mlp([self.text_dim, p.hidden, self.bits], dropout=p.dropout)
        # official TxtNet: fc_encode.weight ~ N(0, 0.3), bias PyTorch's; a scale chosen for
        # the official unit-norm inputs, so it applies only to those (unit_inputs off)
        if p.text_init_std and not p.unit_inputs:
            nn.init.normal_(self.net.text[-1].weight, mean=0.0, std=p.text_init_std)

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        data.require_dense("dgcpn similarity")
        p = self.params
        n = len(data)
        k = neighbours_of(p.neighbours, n)
        t0 = time.perf_counter()
        # the similarity is built from the centred features (see ``centre_inputs``)
        self.similarity = graph_coherence_similarity(
            self.net.inputs(data.image, "image"),
            self.net.inputs(data.text, "text"),
            a1=p.a1,
            a2=p.a2,
            neighbours=k,
            scale=p.coherence_scale * k,
        )
        log.info(
            "dgcpn: similarity of %d training items (k=%d neighbours) in %.1f s",
            n,
            k,
            time.perf_counter() - t0,
        )

    def configure_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
        p = self.params
        opt = torch.optim.SGD(
            [{"params": self.net.image.parameters()}, {"params": self.net.text.parameters()}],
            lr=p.lr,
            momentum=p.momentum,
            weight_decay=p.weight_decay,
            fused=True,
        )
        return opt, None

    def target(self, idx: torch.Tensor) -> torch.Tensor:
        if self.similarity is None:
            raise RuntimeError("dgcpn: setup(data) must run before training")
        return self.similarity.index_select(0, idx).index_select(1, idx)

    def _terms(
        self, code_i: torch.Tensor, code_t: torch.Tensor, s: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        p = self.params
        return dgcpn_terms(
            code_i,
            code_t,
            s,
            k_pair=p.k_pair,
            dis_weight=p.dis_weight,
            cons_weight=p.cons_weight,
        )

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        code_i = torch.tanh(self.project(batch.image, "image"))
        code_t = torch.tanh(self.project(batch.text, "text"))
        return self._terms(code_i, code_t, self.target(batch.idx))

    def train_step(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        if not self.params.half_binary:
            return super().train_step(batch, epoch)
        s = self.target(batch.idx)
        joint = self.loss(batch, epoch)
        self.update(joint["loss"])  # parameters without gradient (the fixed side) are skipped
        # one forward pass of both networks, as in the official code: the image network
        # learns against these text codes made binary, then the text network against these
        # image codes (from before the image step) made binary
        code_i = torch.tanh(self.project(batch.image, "image"))
        code_t = torch.tanh(self.project(batch.text, "text"))
        fixed_t, fixed_i = binary(code_t.detach()), binary(code_i.detach())
        image_step = self._terms(code_i, fixed_t, s)["loss"]
        self.update(image_step)
        text_step = self._terms(fixed_i, code_t, s)["loss"]
        self.update(text_step)
        return detached({**joint, "loss_image_step": image_step, "loss_text_step": text_step})
