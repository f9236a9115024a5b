"""LSH: random-projection hashing, the floor every method must beat.

Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002
(sign random projections). No official code; this is the textbook construction.

Cross-modal use: CLIP image and text embeddings live in one joint space, so one shared
Gaussian projection is applied to both modalities after centring each modality on its
own training mean (which removes most of the "modality gap"). When the two feature
dimensions differ there is no shared space, and two independent projections are used:
the codes are then unrelated across modalities and cross-modal mAP sits at chance, which
is the honest floor.

Deviations: none (there is no paper protocol to deviate from).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xmhash.methods.base import ClosedFormMethod, MethodParams, TrainData


@dataclass(frozen=True)
class LSHParams(MethodParams):
    center: bool = True  # subtract each modality's training mean before projecting


class LSH(ClosedFormMethod):
    name = "lsh"
    Params = LSHParams
    citation = "Charikar, STOC 2002 (sign random projections)"

    def build(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        shared = self.image_dim == self.text_dim
        w_img = torch.randn(self.image_dim, self.bits, generator=g)
        w_txt = w_img.clone() if shared else torch.randn(self.text_dim, self.bits, generator=g)
        self.net.register_buffer("w_image", w_img)
        self.net.register_buffer("w_text", w_txt)
        self.net.register_buffer("mean_image", torch.zeros(self.image_dim))
        self.net.register_buffer("mean_text", torch.zeros(self.text_dim))

    def fit(self, data: TrainData) -> None:
        if self.params.center:
            self.net.mean_image.copy_(data.image.mean(0))
            self.net.mean_text.copy_(data.text.mean(0))

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return (x - getattr(self.net, f"mean_{modality}")) @ getattr(self.net, f"w_{modality}")
