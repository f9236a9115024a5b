"""DCMH-feat: Deep Cross-Modal Hashing's pairwise likelihood, on cached features.

Q.-Y. Jiang, W.-J. Li, "Deep Cross-Modal Hashing", CVPR 2017. Official code:
https://github.com/jiangqy/DCMH-CVPR2017 (MatConvNet/TensorFlow). The noisy-label
track's pairwise supervised baseline: the similarity S_ij = 1[y_i . y_j > 0]
comes from the (noisy) training labels.

Objective (DCMH eq. 2), with F, G the real-valued image/text outputs of all n training
items and B = sign(F + G) the shared binary codes:

  min  -sum_ij (S_ij theta_ij - log(1 + e^theta_ij)) + gamma (||B - F||^2 + ||B - G||^2)
       + eta (||F 1||^2 + ||G 1||^2),       theta_ij = 1/2 F_i . G_j

optimised as in the paper: alternately the image network (G fixed) and the text network
(F fixed) on a mini-batch against all n items of the other modality, the stored F/G rows
of the batch refreshed, and B updated in closed form once per epoch. Retrieval codes are
sign of the network outputs. gamma = eta = 1 as in the paper; each step's loss is divided
by n * batch size (the scale of the widely used PyTorch port).

Deviations:

* Inputs are cached features, so the image network is an MLP d -> hidden -> K, not the
  CNN-F trained end to end; the text network is DCMH's two-layer MLP (d -> hidden -> K)
  with ``hidden`` a parameter (paper 8192 for the text net).
* Adam with a constant learning rate instead of SGD with the paper's decaying schedule
  from 10^-1.5; the image and text steps share one optimiser (its state is per
  parameter, so the alternation is unchanged).
* Both alternating steps run on the same mini-batch (the paper sweeps all image batches,
  then all text batches).
* Inputs are standardised per dimension with the training set's statistics (unit-norm
  features give near-zero initial outputs, where theta = 0 is a saddle the likelihood
  does not leave; CNN-F's and BoW inputs are on a larger scale).
* The batch's rows of B are refreshed after each step (B's closed form is row-separable),
  besides the full update once per epoch.
* After a resume, F and G are recomputed from the restored networks (``setup``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xmhash.methods.base import Batch, DeepMethod, DeepParams, TrainData, detached, mlp


class Standardize(nn.Module):
    """Per-dimension standardisation with the training set's mean and std (buffers)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class DCMHFeatParams(DeepParams):
    epochs: int = 500  # DCMH's official MIRFlickr schedule
    batch_size: int = 128
    lr: float = 1e-4
    hidden: int = 4096
    gamma: float = 1.0  # quantisation weight
    eta: float = 1.0  # bit-balance weight


class DCMHFeat(DeepMethod):
    name = "dcmh_feat"
    Params = DCMHFeatParams
    citation = "Jiang & Li, Deep Cross-Modal Hashing, CVPR 2017 (on cached features)"
    supervised = True

    def build(self) -> None:
        h = self.params.hidden
        self.net = nn.ModuleDict(
            {
                "image": nn.Sequential(
                    Standardize(self.image_dim), mlp([self.image_dim, h, self.bits])
                ),
                "text": nn.Sequential(
                    Standardize(self.text_dim), mlp([self.text_dim, h, self.bits])
                ),
            }
        )

    @torch.no_grad()
    def setup(self, data: TrainData) -> None:
        super().setup(data)
        if data.labels is None:
            raise ValueError(f"{self.name} is supervised: the training data has no labels")
        self.labels = data.labels.float()
        for mod in ("image", "text"):
            self.net[mod][0].fit(getattr(data, mod))
        self.net.eval()
        self.F = torch.cat([self.net["image"](x) for x in data.image.split(4096)])
        self.G = torch.cat([self.net["text"](x) for x in data.text.split(4096)])
        self.B = torch.sign(self.F + self.G)
        self.net.train()

    def configure_optimizer(self, steps_per_epoch: int):
        return torch.optim.Adam(self.net.parameters(), lr=self.params.lr, fused=True), None

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return self.net[modality](x)

    def pairwise_loss(
        self,
        out: torch.Tensor,
        other: torch.Tensor,
        store: torch.Tensor,
        idx: torch.Tensor,
        sim: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """One DCMH half-step: ``out`` (b, K) of the modality being trained, ``other``
        (n, K) the fixed outputs of the other modality, ``store`` this modality's (n, K)."""
        p = self.params
        theta = 0.5 * out @ other.T
        likelihood = -(sim * theta - F.softplus(theta)).sum()
        quant = (self.B[idx] - out).pow(2).sum()
        ones = store.sum(0) - store[idx].sum(0) + out.sum(0)
        balance = ones.pow(2).sum()
        scale = len(store) * len(idx)
        total = (likelihood + p.gamma * quant + p.eta * balance) / scale
        return {"loss": total, "likelihood": likelihood / scale}

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """The image half-step's loss (``train_step`` runs both halves)."""
        sim = (batch.labels @ self.labels.T > 0).float()
        return self.pairwise_loss(self.net["image"](batch.image), self.G, self.F, batch.idx, sim)

    def train_step(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        sim = (batch.labels @ self.labels.T > 0).float()
        out: dict[str, torch.Tensor] = {}
        for mod, x, other, store in (
            ("image", batch.image, self.G, self.F),
            ("text", batch.text, self.F, self.G),
        ):
            h = self.net[mod](x)
            terms = self.pairwise_loss(h, other, store, batch.idx, sim)
            self.update(terms["loss"])
            store[batch.idx] = h.detach()
            out.update({f"{mod}_{k}": v for k, v in detached(terms).items()})
        # B's closed-form update is row-separable: refresh the batch's rows now
        self.B[batch.idx] = torch.sign(self.F[batch.idx] + self.G[batch.idx])
        out["loss"] = out["image_loss"] + out["text_loss"]
        return out

    @torch.no_grad()
    def on_epoch_end(self, epoch: int) -> None:
        self.B = torch.sign(self.F + self.G)
