"""UCCH: Unsupervised Contrastive Cross-modal Hashing.

Hu, Zhu, Lin, Peng, Zhang, "Unsupervised Contrastive Cross-modal Hashing", IEEE TPAMI 45(3),
2023. Official code: github.com/penghu-cs/UCCH (read at 0c20e62: UCCH.py,
NCE/NCEAverage.py, NCE/NCECriterion.py, src/utils.py, nets/, utils/config.py).

Per batch of m pairs with unit-norm relaxed codes u_i (image) and v_i (text),
u = rownorm(tanh(f_I(x))), v = rownorm(tanh(f_T(y))):

* **momentum contrast against binary keys** (:func:`contrastive_logits`): a memory bank
  holds one unit vector per training pair; the keys are sign(memory). Item i is scored
  against its own key (the positive) and ``negatives`` keys drawn uniformly at random,
  score = <key, u_i> / (T sqrt(c)), and L_c = CE(image scores) + CE(text scores). After the
  scores, memory_i <- rownorm(delta memory_i + (1 - delta) rownorm((u_i + v_i) / 2)). During
  the first ``warmup_epochs`` the keys are the batch's own sign((u + v) / 2) and the memory
  is overwritten (delta = 0), as in the official code;
* **cross-modal ranking** (:func:`ranking_loss`): for S = U V^T, a negative that scores
  within ``margin`` of the positive keeps its score, every other one is lowered by
  ``shift``; then L_r = mean_i [-S_ii + logsumexp_j S'_ij + margin] over rows (I->T) plus the
  same over columns (T->I);
* L = alpha L_c + (1 - alpha) L_r.

Networks (feature version): image MLP d -> 8192 -> 8192 -> c, text MLP d -> 8192 -> c,
tanh, L2-normalised. Adam lr 1e-4, weight decay 1e-6, batch 256, gradient-norm clip 1,
MultiStep x0.1 at epochs 30/60/90/120; README command: 20 epochs, alpha 0.7, margin 0.2,
shift 0.1, 4,096 negatives, T 0.9, momentum 0.4.

Protocol: config/paper/ucch.yaml reproduces the official one (``UCCH.py`` with the
``*_fea`` loaders of ``src/cmdataset.py``): the feature files in stored order, the last
2,000 rows (MIRFlickr, IAPR; NUS-WIDE 2,100, MS-COCO 5,000) as queries and every other row
as both the retrieval set and the training set (``dcmh_mat`` with ``official_query`` and
``split: {official: true, train: all}``: 18,015 MIRFlickr training items); the epoch with
the best mean mAP@all of the first 2,000 retrieval items ranked against themselves
(``select: val`` with ``split.val_from: train``: they stay in training); the queries rank
the retrieval set. ``benchmarks/official/ucch.py`` runs the official code beside this
module (docs/official.md).

Remaining differences (deviations) from the official code:

* Random streams: negatives are drawn with torch's seeded generator (uniform, with
  replacement, as the official alias sampler with uniform weights); batch order comes
  from a (seed, epoch) generator; the official script fixes seed 123.
* Memory initialisation: uniform random signs (half +1). The official memory is
  sign(N(0,1) 2s - s), i.e. +1 with probability 0.31; it is only read after the warm-up
  epoch, which overwrites every item it saw (all but the dropped last partial batch), so
  only those few items start differently.
* The memory lives in a resizable buffer (:class:`MemoryBank`), so it is part of
  checkpoints and of ``model.pt``.
* Codes are x >= 0 of the network output (the official code uses sign, where sign(0) = 0);
  Hamming ties are broken by a fixed-seed permutation (numpy's unstable argsort there).
* **Non-negative features** (counts, topic proportions) are centred on their training
  mean before the MLPs (``centre_inputs: auto``, :mod:`xmhash.methods.inputs`); the
  official code feeds raw VGG / BoW features (the paper configs set ``never``), and
  CLIP-like features pass unchanged. On the ``demo_bow`` demo UCCH learns with or
  without it (T->I above I->T).
* **Small inputs: the cause of the few image codes on real features.** The demo's visual
  words are raw counts (mean row norm 6.5); Wikipedia's SIFT histograms are
  L1-normalised (0.14 after centring). Below unit norm the MLPs' default-initialised
  biases outweigh the item (:mod:`xmhash.methods.inputs`): at initialisation the image
  outputs varied across items by 0.001 (std per bit) around a common 0.017, 5 distinct
  codes for 2,173 images, and after 10 epochs 72 image codes remained with a quarter of
  the bits constant (16 bits; mAP@all .182 / .151). Each modality whose training rows
  have a mean norm below 1 is now divided by that norm (``lift_small``; larger features,
  CLIP's included, are unchanged; ``centre_inputs: never`` disables it with the
  centring): 1,519 image and 502 text codes, mAP@all .231 / .226 on the same run. The
  official features (VGG fc7, bag-of-words tags) are large, so the official code never
  meets this.
* The learning-rate milestones are counted in epochs but stepped per batch by the
  trainer (milestone e fires after e * steps_per_epoch batches: the same schedule; none
  fires in the 20-epoch README schedule).
* The demo config uses ``hidden: 1024`` (paper 8192) and few epochs to fit the demo's time
  budget; the paper config carries the official values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xmhash.methods.base import Batch, DeepMethod, DeepParams, TrainData, binary, mlp
from xmhash.methods.inputs import InputCentre, check_centre_mode


@dataclass(frozen=True)
class UCCHParams(DeepParams):
    epochs: int = 20  # README command: 20 (code default 100)
    batch_size: int = 256
    hidden: int = 8192  # hidden width of both MLPs
    image_layers: int = 3  # linear layers of the image MLP
    text_layers: int = 2  # linear layers of the text MLP
    lr: float = 1e-4  # Adam
    weight_decay: float = 1e-6
    lr_milestones: tuple[int, ...] = (30, 60, 90, 120)  # epochs; lr x0.1 at each
    grad_clip: float = 1.0  # gradient-norm clip (0 = off)
    alpha: float = 0.7  # weight of the contrastive loss (1 - alpha: ranking loss)
    margin: float = 0.2  # ranking loss: negatives within margin of the positive keep their score
    shift: float = 0.1  # ranking loss: every other negative is lowered by shift
    negatives: int = 4096  # memory keys drawn per item
    temperature: float = 0.9  # T; scores are divided by T * sqrt(bits)
    momentum: float = 0.4  # delta of the memory update
    warmup_epochs: int = 1  # epochs with in-batch keys and delta = 0
    centre_inputs: str = (
        "auto"  # subtract the training mean: auto (non-negative inputs), always, never
    )


class MemoryBank(nn.Module):
    """One unit vector per training item, in a buffer that takes the shape of whatever
    state it is loaded from (its size is the training-set size, unknown at build time)."""

    def __init__(self, bits: int):
        super().__init__()
        self.register_buffer("memory", torch.zeros(0, bits))

    def reset(self, n: int, generator: torch.Generator) -> None:
        bits = self.memory.shape[1]
        rnd = torch.rand(n, bits, generator=generator) * 2 - 1
        signs = binary(rnd)
        self.memory = F.normalize(signs, dim=1).to(self.memory.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "memory"
        if key in state_dict:
            self.memory = torch.empty_like(state_dict[key], device=self.memory.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def contrastive_logits(
    u: torch.Tensor, keys: torch.Tensor, key_idx: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Scores (m, k) of unit codes u (m, c) against the ±1 keys ``keys[key_idx]``
    (key_idx (m, k); column 0 holds each item's positive), divided by T sqrt(c)."""
    return (u @ keys.T).gather(1, key_idx) / (temperature * math.sqrt(u.shape[1]))


def positive_first_ce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive in column 0 (UCCH's NCESoftmaxLoss)."""
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def ranking_loss(u: torch.Tensor, v: torch.Tensor, margin: float, shift: float) -> torch.Tensor:
    """UCCH's cross-modal ranking loss over the in-batch score matrix S = u v^T."""
    s = u @ v.T
    pos = s.diag()
    keep_rows = (s >= pos[:, None] - margin).detach()  # I->T: per image, over texts
    keep_cols = (s >= pos[None, :] - margin).detach()  # T->I: per text, over images
    cost_rows = torch.where(keep_rows, s, s - shift)
    cost_cols = torch.where(keep_cols, s, s - shift)
    i2t = (-cost_rows.diag() + torch.logsumexp(cost_rows, dim=1) + margin).mean()
    t2i = (-cost_cols.diag() + torch.logsumexp(cost_cols, dim=0) + margin).mean()
    return i2t + t2i


def update_memory(
    memory: torch.Tensor, idx: torch.Tensor, u: torch.Tensor, v: torch.Tensor, momentum: float
) -> None:
    """memory[idx] <- rownorm(momentum memory[idx] + (1 - momentum) rownorm((u + v) / 2))."""
    new = F.normalize((u + v) / 2, dim=1)
    mixed = F.normalize(momentum * memory[idx] + (1 - momentum) * new, dim=1)
    memory.index_copy_(0, idx, mixed)


class UCCH(DeepMethod):
    name = "ucch"
    Params = UCCHParams
    citation = "Hu, Zhu, Lin, Peng, Zhang, IEEE TPAMI 2023 (UCCH)"

    params: UCCHParams

    @property
    def grad_clip(self) -> float | None:  # type: ignore[override]
        return self.params.grad_clip or None

    def build(self) -> None:
        p = self.params
        check_centre_mode(p.centre_inputs, "methods.ucch.centre_inputs")
        self.net.inputs = InputCentre(self.image_dim, self.text_dim, lift_small=True)
        self.net.image = mlp([self.image_dim] + [p.hidden] * (p.image_layers - 1) + [self.bits])
        self.net.text = mlp([self.text_dim] + [p.hidden] * (p.text_layers - 1) + [self.bits])
        self.net.bank = MemoryBank(self.bits)

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        self.net.inputs.fit(data.image, data.text, self.params.centre_inputs, self.name)
        self.net.bank.reset(len(data), torch.Generator().manual_seed(self.seed))

    def configure_optimizer(self, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
        p = self.params
        opt = torch.optim.Adam(
            self.net.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=True
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, [m * steps_per_epoch for m in p.lr_milestones], gamma=0.1
        )
        return opt, sched

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return getattr(self.net, modality)(self.net.inputs(x, modality))

    def codes(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return F.normalize(torch.tanh(self.project(x, modality)), dim=1)

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        p = self.params
        u, v = self.codes(batch.image, "image"), self.codes(batch.text, "text")
        memory = self.net.bank.memory
        m = len(u)
        order = torch.arange(m, device=u.device)
        if epoch < p.warmup_epochs:
            # in-batch keys: the pair's own sign((u + v) / 2) first, then the other pairs
            keys = binary(((u + v) / 2).detach())
            j = order[None, : m - 1]
            others = j + (j >= order[:, None]).long()  # row i: 0..m-1 without i
            key_idx = torch.cat([order[:, None], others], dim=1)
            momentum = 0.0
        else:
            keys = binary(memory)
            neg = torch.randint(len(memory), (m, p.negatives), device=u.device)
            key_idx = torch.cat([batch.idx[:, None], neg], dim=1)
            momentum = p.momentum
        l_image = positive_first_ce(contrastive_logits(u, keys, key_idx, p.temperature))
        l_text = positive_first_ce(contrastive_logits(v, keys, key_idx, p.temperature))
        with torch.no_grad():
            update_memory(memory, batch.idx, u.detach(), v.detach(), momentum)
        contrast = l_image + l_text
        rank = ranking_loss(u, v, p.margin, p.shift)
        return {
            "loss": p.alpha * contrast + (1 - p.alpha) * rank,
            "contrast_image": l_image,
            "contrast_text": l_text,
            "ranking": rank,
        }
