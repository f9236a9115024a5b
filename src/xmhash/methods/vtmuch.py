"""VTM-UCH: Vision-guided Text Mining for Unsupervised Cross-modal Hashing with Community
Similarity Quantization.

Haozhi Fan, Yuan Cao. AAAI 2025 (vol. 39 no. 3, doi 10.1609/aaai.v39i3.32290).
Official code: https://github.com/louisfanhz/VTMUCH.

The training target S (n x n, entries in [-1, 1]) is built once by the graph stage
(:mod:`xmhash.graph.vtmuch`: word-vision matching S^y, object-level image similarity S^x,
their union, Leiden communities, densified centres S^c, the joint matrix S) and read here
from the ``vtmuch`` graph file. Hash heads: Linear(D, 2048) - ReLU - Linear(2048, K) -
tanh per modality; the loss reconstructs K * S[I, I] with the intra- and cross-modal code
inner products and aligns the three inner-product matrices:

    L = rho * mse(Ht Ht^T, K S) + (1 - rho) * mse(Hv Hv^T, K S) + mse(Hv Ht^T, K S)
        + alpha * [mse(Hv Hv^T, Ht Ht^T) + mse(Hv Ht^T, Hv Hv^T) + mse(Hv Ht^T, Ht Ht^T)]

Variants (``variant``):

* ``cached`` (the default here): frozen cached CLIP image *and* text features, two MLP
  heads. Fast, CPU-friendly.
* ``finetune`` (the paper's setting): the CLIP text tower (``transformers``
  ``CLIPTextModelWithProjection``, loaded from the run's ``encoder`` resource, the same
  weights that made the cached features) is trained with lr ``clip_lr`` on the raw
  texts, tags re-joined with commas, at most ``max_words`` tokens; the image side stays
  on the cached (frozen) image features. On CUDA the tower runs under bf16 autocast
  where the GPU supports it, else fp16 with a gradient scaler (:func:`autocast_policy`).

Optimiser: AdamW (beta 0.9/0.98, eps 1e-6, weight decay 0.01), gradient-norm clip 1.0,
5 % linear warm-up then cosine, batch 128, 20 epochs (README), alpha 1, rho 0.1.

Deviations from the paper/official code:

* the ``cached`` variant does not fine-tune the text tower (frozen text features), and
  its config uses a head learning rate of 1e-3 instead of the paper's 1e-4: with frozen,
  L2-normalised features the tanh heads start near the origin, where the inner-product
  loss has small gradients, and at 1e-4 they barely leave it in a demo budget (demo,
  32 bits: mAP@all 0.62/0.60 at 1e-4 x 20 epochs vs 0.67/0.66 at 1e-3 x 10 epochs; LSH
  0.58/0.59);
* the optimiser is torch's AdamW (bias-corrected) instead of the BERT-style Adam without
  bias correction; the cosine decay runs over the post-warm-up steps (the code's
  multiplier uses the progress over the whole run);
* model selection: the code picks the epoch with the best mAP on the query/retrieval
  sets (test-set selection); here it is the trainer's ``select`` rule (last epoch, or a
  validation split carved from the database);
* the graph-stage deviations (seeded Leiden, own seeded k-means, boxes from the feature
  file's regions instead of the MMDetection Open Images detector) are listed in
  :mod:`xmhash.graph.vtmuch` and in the feature stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from xmhash.bits import binarize
from xmhash.graph.store import read_graph, require
from xmhash.methods.base import (
    AutocastPolicy,
    Batch,
    ConfigError,
    DeepMethod,
    DeepParams,
    Items,
    TrainData,
    autocast_policy,
    mlp,
    warmup_cosine,
)

GRAPH_KIND = "vtmuch"


@dataclass(frozen=True)
class VTMUCHParams(DeepParams):
    variant: Literal["cached", "finetune"] = "cached"
    epochs: int = 20
    batch_size: int = 128
    hidden: int = 2048
    alpha: float = 1.0  # weight of the alignment term
    rho: float = 0.1  # text-text vs image-image weight in the similarity term
    lr: float = 1e-4  # hash heads
    clip_lr: float = 1e-5  # CLIP text tower (finetune)
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of steps
    max_words: int = 64  # token budget of a text, SOT and EOT included (finetune)


def vtmuch_loss(
    hv: torch.Tensor, ht: torch.Tensor, s: torch.Tensor, *, alpha: float, rho: float
) -> dict[str, torch.Tensor]:
    """The VTM-UCH loss of one batch: relaxed codes ``hv``, ``ht`` (b, K), target ``s`` (b, b)."""
    k = hv.shape[1]
    p_vv, p_tt, p_vt = hv @ hv.T, ht @ ht.T, hv @ ht.T
    target = k * s
    sim = (
        rho * F.mse_loss(p_tt, target)
        + (1 - rho) * F.mse_loss(p_vv, target)
        + F.mse_loss(p_vt, target)
    )
    align = F.mse_loss(p_vv, p_tt) + F.mse_loss(p_vt, p_vv) + F.mse_loss(p_vt, p_tt)
    return {"loss": sim + alpha * align, "sim": sim, "align": align}


def tag_text(text: str) -> str:
    """Tags re-joined with commas, as the official code feeds them to CLIP."""
    parts = [t for t in text.replace(",", " ").split() if t]
    return ",".join(parts)


class VTMUCH(DeepMethod):
    name = "vtmuch"
    Params = VTMUCHParams
    citation = "Fan & Cao, AAAI 2025 (VTM-UCH)"
    needs = frozenset({"graph", "texts", "encoder"})  # texts/encoder: variant finetune only
    graphs = ("vtmuch",)
    grad_clip = 1.0
    params: VTMUCHParams

    # ------------------------------------------------------------------ model

    def build(self) -> None:
        p = self.params
        self.net.image = mlp([self.image_dim, p.hidden, self.bits])
        self.net.text = mlp([self.text_dim, p.hidden, self.bits])
        self.tokenizer = None
        if p.variant == "finetune":
            self._build_text_tower()

    def _build_text_tower(self) -> None:
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        path = self.resources.get("encoder")
        if not path:
            raise ConfigError(
                "methods.vtmuch.variant: finetune needs the encoder weights "
                "(resources['encoder'], a transformers CLIP directory)"
            )
        tower = CLIPTextModelWithProjection.from_pretrained(path)
        if tower.config.projection_dim != self.text_dim:
            raise ConfigError(
                f"{path}: CLIP projection_dim {tower.config.projection_dim} "
                f"differs from the text features' dim {self.text_dim}"
            )
        self.net.tower = tower
        self.tokenizer = AutoTokenizer.from_pretrained(path)

    def _policy(self) -> AutocastPolicy:
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        return autocast_policy(self.device.type, bf16)

    def _autocast(self):
        dtype = self._policy().dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            [tag_text(t) for t in texts],
            padding="max_length",
            truncation=True,
            max_length=self.params.max_words,
            return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"]

    def text_tower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            out = self.net.tower(input_ids=ids, attention_mask=mask).text_embeds
        return out.float()

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return torch.tanh(getattr(self.net, modality)(x))

    @torch.no_grad()
    def encode(self, items: Items, modality: str, batch_size: int = 1024) -> np.ndarray:
        if modality != "text" or self.params.variant != "finetune":
            return super().encode(items, modality, batch_size)
        if items.texts is None:
            raise ValueError("vtmuch (finetune): encoding texts needs the raw texts")
        self.net.eval()
        out = []
        for start in range(0, len(items.texts), batch_size):
            ids, mask = self.tokenize(items.texts[start : start + batch_size])
            feats = self.text_tower(ids.to(self.device), mask.to(self.device))
            out.append(binarize(self.project(feats, "text").float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.bits), np.int8)

    # ------------------------------------------------------------------ training

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        data.require_dense("vtmuch target")
        path = data.graph.get(GRAPH_KIND)
        if path is None:
            raise ValueError(
                f"vtmuch needs the {GRAPH_KIND!r} graph file (graph stage); got "
                f"graphs {sorted(data.graph)}"
            )
        g = read_graph(path, parts=("target",))
        if len(g.rows) != len(data.rows) or not np.array_equal(g.rows, data.rows):
            raise ValueError(
                f"{path}: /rows ({len(g.rows)} items) are not the training rows "
                f"of this run ({len(data.rows)} items); rebuild the graph"
            )
        target = require(g, "target", path, f"({len(data)}, {len(data)}) float32")
        self.S = torch.as_tensor(target, device=self.device)
        if self.params.variant == "finetune":
            if data.texts is None:
                raise ValueError("vtmuch (finetune): the training data has no raw texts")
            ids, mask = self.tokenize(list(data.texts))
            self.token_ids, self.token_mask = ids.to(self.device), mask.to(self.device)

    def configure_optimizer(self, steps_per_epoch: int):
        p = self.params
        groups = [
            {"params": [*self.net.image.parameters(), *self.net.text.parameters()], "lr": p.lr}
        ]
        if p.variant == "finetune":
            groups.append({"params": list(self.net.tower.parameters()), "lr": p.clip_lr})
        opt = torch.optim.AdamW(
            groups, betas=(0.9, 0.98), eps=1e-6, weight_decay=p.weight_decay, fused=True
        )
        if p.variant == "finetune" and self._policy().scaler:
            self.scaler = torch.amp.GradScaler(self.device.type)
        return opt, warmup_cosine(opt, p.epochs * steps_per_epoch, warmup=p.warmup)

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        s = self.S[batch.idx][:, batch.idx]
        text = batch.text
        if self.params.variant == "finetune":
            text = self.text_tower(self.token_ids[batch.idx], self.token_mask[batch.idx])
        hv, ht = self.project(batch.image, "image"), self.project(text, "text")
        return vtmuch_loss(hv, ht, s, alpha=self.params.alpha, rho=self.params.rho)
