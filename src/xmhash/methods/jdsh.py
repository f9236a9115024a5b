"""JDSH: Joint-modal Distribution-based Similarity Hashing.

Liu, Qian, Hu, Zhong, Cao, Xie, Liang, Zhang, Zhu, "Joint-modal Distribution-based
Similarity Hashing for Large-scale Unsupervised Deep Cross-modal Retrieval", SIGIR 2020.
Official code: github.com/KaiserLew/JDSH (read: JDSH.py, models.py, config.py and
config/JDSH_NUSWIDE.json).

Per batch, the joint-modal similarity (:func:`xmhash.methods.joint.jdsh_similarity`)
S' = alpha S_I + beta S_T + lamb (S_high + S_high^T)/2, with S_I = 2 cos F_I - 1,
S_T = 2 cos F_T - 1 and the cross-modal second-order S_high = rownorm(S_I) rownorm(S_T)^T,
goes through the distribution-based similarity decision and weighting (DSDW,
:func:`xmhash.methods.joint.dsdw_weight`): entries below loc_left - a scale_left are pushed
down, entries above loc_right + b scale_right up; S = mu S'. Relaxed codes
B = rownorm(tanh(sqrt(epoch + 1) h)) reconstruct it:

    L = intra [MSE(B_I B_I^T, S) + MSE(B_T B_T^T, S)] + MSE(B_I B_T^T, S)
        + MSE(B_T B_I^T, S) - mean_i <b_i^I, b_i^T>.

SGD (lr 0.01 for both networks, momentum 0.9, weight decay 5e-4), batch 32, 300 epochs.
Defaults are the MIRFlickr settings of config.py (alpha .5, beta .1, lamb .4, mu 1.47,
a = 2, b = 4, L1 = .1, L2 = .2).

Deviations from the paper and the official code:

* Inputs are cached, frozen features (CLIP by default), not raw images: both hash
  networks are MLPs (d -> ``hidden`` -> bits); the official image network is AlexNet's
  classifier plus a hash layer, its text network d -> 4096 -> bits. ``unit_inputs`` (on by
  default) L2-normalises each input and multiplies it by sqrt(d) (unit-scale coordinates
  for the MLPs; CLIP embeddings are unit-norm).
* DSDW thresholds: the official configs hard-code the location, scales, minimum and
  maximum of the similarity distribution fitted on MIRFlickr/NUS-WIDE AlexNet+BoW
  features (``dsdw: fixed`` uses them, keys ``loc_left`` ... ``s_max``). They do not carry
  over to other features, so by default (``dsdw: fit``) they are refitted before training
  on the off-diagonal entries of S' over ``fit_batches`` random training batches, the way
  the config numbers were obtained (mode of the distribution, one half-Gaussian per side:
  :func:`xmhash.methods.joint.fit_dsdw_thresholds`). ``dsdw: none`` skips the weighting
  (an ablation).
* The weighting moves entries by a multiple of |s| rather than of s, so that it pushes in
  the intended direction when the thresholds fall on the other side of zero (CLIP
  similarities are mostly positive); identical to the official (1 + w) s whenever the
  dissimilar side is negative and the similar side positive, as with the paper's features.
* ``centre_inputs`` (``auto`` by default; ``never`` is the official code): non-negative
  features are centred on their training mean before the hash networks (S' is still
  built from the features as given). Without it JDSH collapsed at 16 bits on Wikipedia's
  SIFT / LDA features: their rows lie in one narrow cone (mean cosines 0.38 and 0.47), so
  at initialisation each output bit has a common offset about as large as its spread over
  the items (median |mean| / std 1.2, up to 3.6; 12-19 % of the text bits already the same
  for every item); the paired-code term -<b_i^I, b_i^T> rewards exactly that shared
  component in both networks, so it grows, and the sqrt(epoch + 1) sharpening then
  saturates it (41 % of the image outputs at |tanh| > 0.99). After the first epoch 69 %
  of the image bits and 88 % of the text bits were constant over the 2,173 training
  items, and 44 % / 56 % still were after 20 epochs (59 distinct text codes; T->I 0.18).
  The DSDW weighting is not involved (``dsdw: none`` collapses the same way), and
  feeding the raw features without ``unit_inputs`` (the official input) collapses further
  (one image code). Centred: no constant bit, 1,288 image and 495 text codes, T->I 0.41
  at 16 bits (seed 0).
* The demo config uses ``hidden: 1024`` (paper 4096) and few epochs; paper configs carry
  the paper's values. Model selection follows the trainer (last epoch, or the validation
  split); the official code reports the best test mAP over evaluations.
* Codes are x >= 0 of the pre-tanh output (the official code uses sign).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from xmhash.methods.base import Batch, DeepParams, TrainData, mlp
from xmhash.methods.djsrh import HashNetworks, relaxed_codes
from xmhash.methods.joint import (
    DSDWThresholds,
    dsdw_weight,
    fit_dsdw_thresholds,
    jdsh_similarity,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JDSHParams(DeepParams):
    epochs: int = 300  # paper: 300
    batch_size: int = 32
    hidden: int = 4096  # hidden width of both hash networks
    alpha: float = 0.5  # weight of the image similarity (NUS 0.4)
    beta: float = 0.1  # weight of the text similarity (NUS 0.3)
    lamb: float = 0.4  # weight of the cross-modal second-order similarity (NUS 0.3)
    mu: float = 1.47  # scale of S
    intra: float = 0.1  # weight of the intra-modal reconstructions
    lr_image: float = 0.01
    lr_text: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    dsdw: Literal["fit", "fixed", "none"] = "fit"  # thresholds: refit, the config's, or none
    dsdw_a: float = 2.0  # left threshold = loc_left - a * scale_left ("ALPHA")
    dsdw_b: float = 4.0  # right threshold = loc_right + b * scale_right ("BETA")
    dsdw_l1: float = 0.1  # strength of the push-down ("L1"; NUS 0.2)
    dsdw_l2: float = 0.2  # strength of the push-up ("L2")
    fit_batches: int = 100  # random training batches whose S' the thresholds are fitted to
    loc_left: float = -0.49  # dsdw: fixed (MIRFlickr config values)
    scale_left: float = 0.019
    loc_right: float = -0.49
    scale_right: float = 0.088
    s_min: float = -0.52
    s_max: float = 0.68
    unit_inputs: bool = True  # L2-normalise inputs and scale by sqrt(d)
    centre_inputs: str = "auto"  # network inputs minus the training mean: auto, always, never


def jdsh_terms(
    code_i: torch.Tensor, code_t: torch.Tensor, s: torch.Tensor, *, intra: float
) -> dict[str, torch.Tensor]:
    """JDSH's loss terms for relaxed codes (m, c) and the target S (m, m)."""
    b_i = F.normalize(code_i, dim=1)
    b_t = F.normalize(code_t, dim=1)
    ii = F.mse_loss(b_i @ b_i.T, s)
    tt = F.mse_loss(b_t @ b_t.T, s)
    it = F.mse_loss(b_i @ b_t.T, s)
    ti = F.mse_loss(b_t @ b_i.T, s)
    pair = (b_i * b_t).sum(dim=1).mean()
    return {
        "loss": intra * (ii + tt) + it + ti - pair,
        "intra_image": ii,
        "intra_text": tt,
        "inter": it + ti,
        "pair_cos": pair,
    }


class JDSH(HashNetworks):
    name = "jdsh"
    Params = JDSHParams
    citation = "Liu et al., SIGIR 2020 (JDSH)"

    params: JDSHParams
    thresholds: DSDWThresholds | None = None

    def build_networks(self) -> None:
        p = self.params
        self.net.image = mlp([self.image_dim, p.hidden, self.bits])
        self.net.text = mlp([self.text_dim, p.hidden, self.bits])

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        p = self.params
        if p.dsdw == "fixed":
            self.thresholds = DSDWThresholds(
                p.loc_left, p.scale_left, p.loc_right, p.scale_right, p.s_min, p.s_max
            )
        elif p.dsdw == "fit":
            self.thresholds = fit_dsdw_thresholds(self.sample_similarities(data))
        else:
            self.thresholds = None
        log.info("jdsh: DSDW thresholds (%s): %s", p.dsdw, self.thresholds)

    def sample_similarities(self, data: TrainData) -> torch.Tensor:
        """Off-diagonal entries of S' over ``fit_batches`` seeded random batches."""
        p = self.params
        n = len(data)
        m = min(p.batch_size, n)
        g = torch.Generator().manual_seed(self.seed)
        off = ~torch.eye(m, dtype=torch.bool, device=data.image.device)
        values = []
        for _ in range(p.fit_batches):
            idx = torch.randperm(n, generator=g)[:m].to(data.image.device)
            s = jdsh_similarity(
                data.image[idx], data.text[idx], alpha=p.alpha, beta=p.beta, lamb=p.lamb
            )
            values.append(s[off])
        return torch.cat(values)

    def configure_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
        p = self.params
        groups = [
            {"params": self.net.image.parameters(), "lr": p.lr_image},
            {"params": self.net.text.parameters(), "lr": p.lr_text},
        ]
        opt = torch.optim.SGD(
            groups, lr=p.lr_text, momentum=p.momentum, weight_decay=p.weight_decay, fused=True
        )
        return opt, None

    def target(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """S = mu * DSDW(S') of one batch."""
        p = self.params
        s = jdsh_similarity(image, text, alpha=p.alpha, beta=p.beta, lamb=p.lamb)
        if self.thresholds is not None:
            s = dsdw_weight(s, self.thresholds, a=p.dsdw_a, b=p.dsdw_b, l1=p.dsdw_l1, l2=p.dsdw_l2)
        return p.mu * s

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        s = self.target(batch.image, batch.text)
        code_i = relaxed_codes(self.project(batch.image, "image"), epoch)
        code_t = relaxed_codes(self.project(batch.text, "text"), epoch)
        return jdsh_terms(code_i, code_t, s, intra=self.params.intra)
