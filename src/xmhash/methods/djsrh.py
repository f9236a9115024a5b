"""DJSRH: Deep Joint-Semantics Reconstructing Hashing.

Su, Zhong, Zhang, "Deep Joint-Semantics Reconstructing Hashing for Large-Scale
Unsupervised Cross-Modal Retrieval", ICCV 2019. Official code: github.com/zzs1994/DJSRH
(read at 6041c2d: train.py, models.py, settings.py).

Per batch of m pairs, the joint-semantics matrix S (:func:`xmhash.methods.joint.djsrh_similarity`:
S~ = beta (2 cos F_I - 1) + (1 - beta)(2 cos F_T - 1), S = mu [(1 - eta) S~ + eta S~ S~^T / m])
is reconstructed by the cosine similarities of the relaxed codes B = rownorm(tanh(alpha h)),
alpha = sqrt(epoch + 1):

    L = lambda1 MSE(B_I B_I^T, S) + MSE(B_I B_T^T, S) + lambda2 MSE(B_T B_T^T, S).

Two SGD parameter groups (image lr 1e-3, text lr 1e-2; momentum 0.9, weight decay 5e-4),
batch 32, 80 epochs (200 on Wiki). Defaults are the MIRFlickr settings (beta 0.9; NUS-WIDE
0.6, Wiki 0.3 with lambda1 = lambda2 = 0.3).

Deviations from the paper and the official code:

* Inputs are cached, frozen features (CLIP by default), not raw images: the image
  network is an MLP (d -> ``hidden`` -> bits) standing in for AlexNet's trainable fc7 and
  hash layer, with the same shape as the text network (d -> 4096 -> bits), and S is
  computed from the same cached features (the official code takes F_I from a frozen copy
  of AlexNet, which is the same thing).
* ``unit_inputs`` (on by default): each input row is L2-normalised and multiplied by
  sqrt(d), so that the coordinates of CLIP's unit-norm 512-d embeddings have unit scale
  for a freshly initialised MLP (the papers' inputs, fc7 activations and BoW counts, are
  of that scale already).
* ``centre_inputs`` (``auto`` by default, :class:`HashNetworks`, shared with JDSH and
  DGCPN): non-negative features (counts, histograms, topic proportions) are centred on
  their training mean before the hash networks; the similarity S is still built from the
  features as given, as in the official code. Non-negative rows all lie in one narrow cone
  (Wikipedia: mean cosine 0.38 between SIFT histograms, 0.47 between LDA topic vectors),
  so every output bit of a fresh network starts with a common offset as large as its
  spread across items, which JDSH's training turned into bits constant over the whole
  set (see its docstring). On Wikipedia DJSRH (official Wiki settings) did not collapse
  without it; centred, its T->I rose from 0.31 to 0.37 at 16 bits.
* The demo config uses ``hidden: 1024`` (paper 4096) and few epochs, to fit the demo's
  time budget; the paper configs carry the paper's values.
* Per-dataset settings: the MIRFlickr default beta 0.9 builds S almost only from the
  image features. On Wikipedia-like features (128-d SIFT words, the weaker modality, and
  10-d LDA topics) that target carries little of the labels, and DJSRH barely beat LSH
  on ``demo_bow`` (mAP@all 0.23 / 0.21 at 32 bits vs LSH 0.18 / 0.16). The official
  code's Wiki settings (beta 0.3, lambda1 = lambda2 = 0.3, image lr 0.01) are config.yaml's
  ``method_overrides`` for ``wikipedia`` and ``demo_bow`` (0.27 / 0.36 there).
* Codes are x >= 0 of the pre-tanh output (the official code uses sign, where sign(0) = 0).
* Batch order comes from the trainer's seeded generator, not an unseeded DataLoader.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xmhash.methods.base import Batch, DeepMethod, DeepParams, TrainData, mlp
from xmhash.methods.inputs import InputCentre, check_centre_mode
from xmhash.methods.joint import djsrh_similarity


@dataclass(frozen=True)
class DJSRHParams(DeepParams):
    epochs: int = 80  # paper: 80 (MIRFlickr, NUS-WIDE), 200 (Wiki)
    batch_size: int = 32
    hidden: int = 4096  # hidden width of both hash networks
    beta: float = 0.9  # weight of the image similarity in S~ (MIR 0.9, NUS 0.6, Wiki 0.3)
    eta: float = 0.4  # weight of the second-order (diffusion) term
    mu: float = 1.5  # scale of S
    lambda1: float = 0.1  # weight of the image-image reconstruction
    lambda2: float = 0.1  # weight of the text-text reconstruction
    lr_image: float = 0.001
    lr_text: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    unit_inputs: bool = True  # L2-normalise inputs and scale by sqrt(d)
    centre_inputs: str = "auto"  # network inputs minus the training mean: auto, always, never


def unit_scale(x: torch.Tensor) -> torch.Tensor:
    """Rows L2-normalised, times sqrt(d): unit-scale coordinates for an MLP."""
    return F.normalize(x, dim=1) * math.sqrt(x.shape[1])


class HashNetworks(DeepMethod):
    """The two hash networks of the DJSRH family (DJSRH, JDSH, DGCPN) and what they are fed.

    A network's input is the feature minus its modality's training mean (``centre_inputs``,
    :mod:`xmhash.methods.inputs`: by default only for non-negative features), then, with
    ``unit_inputs``, L2-normalised and scaled by sqrt(d). DJSRH and JDSH build their
    similarity targets from the features as given, as the official code does (DGCPN from
    the centred ones). Subclasses set ``self.net.image`` and ``self.net.text`` in
    :meth:`build_networks`.
    """

    def build(self) -> None:
        check_centre_mode(self.params.centre_inputs, f"methods.{self.name}.centre_inputs")
        self.net.inputs = InputCentre(self.image_dim, self.text_dim)
        self.build_networks()

    @abstractmethod
    def build_networks(self) -> None:
        """Create ``self.net.image`` and ``self.net.text``."""

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        self.net.inputs.fit(data.image, data.text, self.params.centre_inputs, self.name)

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        net: nn.Module = getattr(self.net, modality)
        x = self.net.inputs(x, modality)
        return net(unit_scale(x) if self.params.unit_inputs else x)


def relaxed_codes(h: torch.Tensor, epoch: int) -> torch.Tensor:
    """tanh(alpha h) with DJSRH's alpha = sqrt(epoch + 1) (epoch counted from 0)."""
    return torch.tanh(math.sqrt(epoch + 1.0) * h)


def djsrh_terms(
    code_i: torch.Tensor, code_t: torch.Tensor, s: torch.Tensor, *, lambda1: float, lambda2: float
) -> dict[str, torch.Tensor]:
    """DJSRH's loss terms for relaxed codes (m, c) and the target S (m, m)."""
    b_i = F.normalize(code_i, dim=1)
    b_t = F.normalize(code_t, dim=1)
    ii = F.mse_loss(b_i @ b_i.T, s)
    it = F.mse_loss(b_i @ b_t.T, s)
    tt = F.mse_loss(b_t @ b_t.T, s)
    return {
        "loss": lambda1 * ii + it + lambda2 * tt,
        "intra_image": ii,
        "inter": it,
        "intra_text": tt,
    }


class DJSRH(HashNetworks):
    name = "djsrh"
    Params = DJSRHParams
    citation = "Su, Zhong, Zhang, ICCV 2019 (DJSRH)"

    params: DJSRHParams

    def build_networks(self) -> None:
        p = self.params
        self.net.image = mlp([self.image_dim, p.hidden, self.bits])
        self.net.text = mlp([self.text_dim, p.hidden, self.bits])

    def configure_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
        p = self.params
        opt = torch.optim.SGD(
            [
                {"params": self.net.image.parameters(), "lr": p.lr_image},
                {"params": self.net.text.parameters(), "lr": p.lr_text},
            ],
            lr=p.lr_text,
            momentum=p.momentum,
            weight_decay=p.weight_decay,
            fused=True,
        )
        return opt, None

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        p = self.params
        s = djsrh_similarity(batch.image, batch.text, beta=p.beta, eta=p.eta, mu=p.mu)
        code_i = relaxed_codes(self.project(batch.image, "image"), epoch)
        code_t = relaxed_codes(self.project(batch.text, "text"), epoch)
        return djsrh_terms(code_i, code_t, s, lambda1=p.lambda1, lambda2=p.lambda2)
