"""RSHNL: Robust Self-Paced Hashing for Cross-Modal Retrieval with Noisy Labels.

R. Pu, Y. Sun, Y. Qin, Z. Ren, X. Song, H. Zheng, D. Peng. AAAI 2025, vol. 39 no. 19,
pp. 19969-19977 (arXiv 2501.01699). Official code: https://github.com/perquisite/RSHNL
(read at 34de146: ``model.py``, ``losses.py``, ``train_model.py``, ``main.py``,
``load_data.py``, ``evaluate.py``); ``benchmarks/official/rshnl.py`` runs it beside this
module (docs/official.md).

Model: two modality-specific MLP hash networks d -> H -> H -> K (ReLU, the last layer
without bias) -> tanh -> row L2-normalisation, and a class-centre network I_C -> H -> H
-> K -> tanh -> L2-normalisation that outputs one learnable unit-norm centre per class.
Codes are sign(h). Loss per batch:

* base loss L_q(p) = (1-q)(1-p^q)/q + q(1-p), q = 0.01 (GCE plus a small MAE term);
* CAL, centre aggregation: P^m = softmax(h^m W^T) over the classes (cosine logits, no
  temperature), p_i^m = sum_c y_ic P^m_ic with the (noisy) labels y, per-sample
  difficulty l_i = L_q(p_i^img) + L_q(p_i^txt);
* CHL, contrastive hashing: over the 2B codes [H^img; H^txt], S = exp(Z Z^T / tau) without
  the diagonal, p_a = S[a, pair(a)] / sum_{b != a} S[a, b]; L_CHL = 2 mean_a L_q(p_a) (the
  official code's two directional terms are identical);
* NSH, self-paced weights: from epoch ``tp`` on, w_i = max(0, 1 - l_i/gamma) (linear) or
  1[l_i < gamma] (hard), from the current forward pass and detached, with the regulariser
  R(w) = gamma (w^2/2 - w) (linear) or -gamma w (hard);
* L = lamda mean_i [w_i l_i + R(w_i)] + alpha L_CHL.

Where the weights die: codes and centres are unit vectors, so the logits are cosines in
[-1, 1]. All C classes at once reach at best p* = e / (e + (C-1) e^(-1/(C-1))) (the centres
a regular simplex, each item on its centre; ``best_label_mass``), so the difficulty stays
at or above 2 L_q(p*) (``difficulty_floor``: 2.72 for 10 classes, 4.00 for 20, 7.04 for
100, 8.36 for 200) and the linear weight at or below 1 - floor/gamma
(``weight_ceiling``: 0.092 at Wikipedia's gamma 3, 0.20 at XMedia's 5). One item alone
can go lower (1.58 for 10 classes, every other centre antipodal to it), only at the other
classes' expense. The official gammas sit just above the floors; the difficulty of real
codes sits far above them, so the weights can all be 0 (real Wikipedia features,
docs/noisy_labels.md: none from epoch 6 on, for 28 epochs up to the whole run), and with
every weight 0 the CAL term is 0: RSHNL then trains on CHL alone, without labels.
``train_log.csv`` records the share of items with a nonzero weight (``weight_nonzero``)
and the epoch's difficulty range; when the share stays under 1 % for 5 epochs after the
warm-up, the training summary and ``metrics.json`` carry a warning and ``self_paced``
(gamma, the epochs, the difficulty range, the floor).

Adam (lr 1e-4, both networks), batch 256, 150 epochs; the official code keeps the epoch
with the best clean-validation mAP (``training.select: val`` / ``noise.select: val``).
Per-dataset defaults (code comments, order wiki / xmedia / INRIA-Websearch / xmedianet):
alpha = 0.05 / 0.1 / 0.3 / 0.05, gamma = 3 / 5 / 8 / 9; config.yaml carries XMedia's
(alpha 0.1, gamma 5) and config/paper/rshnl.yaml the per-dataset values.

Protocol: config/paper/rshnl.yaml reproduces the official one: the .mat file's own
train / validation (the first 500 XMedia test rows) / test rows (``rshnl_mat`` with
``split.official``), the test set ranked against itself (``evaluation.database: query``,
500 x 500 on XMedia), the official noise draw (``symall``: floor(r N) items get a class
uniform over all classes, their own included), 150 epochs, batch 256, Adam 1e-4, hidden
4096, the best clean-validation epoch.

Class numbering: we number classes 0..C-1, one label column and one centre per class
(XMedia: 20 centres). The official code one-hot encodes the 1-based class ids with
max + 1 columns, so it trains 21 centres for XMedia's 20 classes; column 0 is never a true
class, yet its centre takes part in every softmax, and the official noise draw puts
1/21 of the drawn labels on it (about 41 of the 800 drawn at rate 0.2 on 4,000 items).
We do not copy this: it is an artefact of the file's numbering base (the same dataset
would train differently from a 0-based file), not part of the method the paper describes
(one centre per class), and labels on a class no item has are a different noise model
from the symmetric noise the paper names. Measured with ``benchmarks/official/rshnl.py``
(same data and noisy labels, 5 classes, 3 seeds): the empty class lowers the official
code's own mAP by 0.051 (I->T) / 0.041 (T->I); it weighs less with more classes.

Remaining differences (deviations) from the official code:

* Classes: C centres, not C + 1 (above).
* Noisy labels come from the noise stage (xmhash.data.noise, one numpy generator seeded
  with the run seed), not from ``get_noisylabels`` (Python ``random`` seeded 10 for the
  rows, numpy seeded 1 for the classes, cached once for all runs); the distribution is
  the same (``symall``).
* The hidden width H is a parameter (``hidden``; paper configs 4096) so the demo runs on
  a CPU.
* Batches follow the shared trainer: seeded by (seed, epoch), drop_last (the official
  loader keeps the last short batch: XMedia 15 x 256 + 160).
* Codes are x >= 0 (sign(0) = 0 in the official code); Hamming ties are broken by a
  fixed-seed permutation (numpy's unstable argsort in the official evaluator). Model
  selection ranks the epochs by the tie-aware validation mAP (``training.select_metric``,
  default ``tie_aware``), which no tie rule moves; under a tie rule (``map``) a tiny
  validation set lets the rule pick the epoch (measured: 3 of 6 seeds bit-identical
  codes, the others apart only by the selected epoch; docs/official.md).
* The per-sample weights recorded for the report (``sample_weights``) are computed for
  every training item in one pass with the selected model, not logged per mini-batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmhash.methods.base import Batch, DeepMethod, DeepParams, TrainData

EPS = 1e-12


# --------------------------------------------------------------------------- losses


def lq_loss(p: torch.Tensor, q: float) -> torch.Tensor:
    """RSHNL's base loss L_q(p) = (1-q)(1-p^q)/q + q(1-p), elementwise (q in (0, 1])."""
    p = p.clamp_min(EPS)
    return (1 - q) * (1 - p.pow(q)) / q + q * (1 - p)


def gce_loss(p: torch.Tensor, q: float) -> torch.Tensor:
    """Generalised cross-entropy (Zhang & Sabuncu, NeurIPS 2018): (1 - p^q)/q; q=1 is MAE."""
    return (1 - p.clamp_min(EPS).pow(q)) / q


def label_mass(h: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p_i = sum_c y_ic softmax(h_i W^T)_c: probability mass on the labelled classes."""
    return (F.softmax(h @ centres.T, dim=1) * labels).sum(dim=1)


def contrastive_lq(h_img: torch.Tensor, h_txt: torch.Tensor, tau: float, q: float) -> torch.Tensor:
    """CHL: 2 * mean over the 2B anchors of L_q(p_a), p_a the softmax mass of the anchor's
    paired item among all 2B-1 other codes (both modalities)."""
    b = len(h_img)
    z = torch.cat([h_img, h_txt])
    logits = z @ z.T / tau
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), -math.inf)
    pair = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    p = F.softmax(logits, dim=1).gather(1, pair[:, None]).squeeze(1)
    return 2 * lq_loss(p, q).mean()


def self_paced(
    ell: torch.Tensor, gamma: float, linear: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """NSH weights (detached) and regulariser: linear w = max(0, 1 - l/gamma),
    R = gamma (w^2/2 - w); hard w = 1[l < gamma], R = -gamma w."""
    ell = ell.detach()
    if linear:
        w = (1 - ell / gamma).clamp_min(0)
        return w, gamma * (w.pow(2) / 2 - w)
    w = (ell < gamma).to(ell.dtype)
    return w, -gamma * w


def best_label_mass(n_classes: int, alone: bool = False) -> float:
    """The largest label mass p every class can reach at once: codes and centres are unit
    vectors, so the logits are cosines in [-1, 1], and C unit centres are at best a
    regular simplex (pairwise cosine -1/(C-1), which needs bits >= C-1), each item on its
    class's centre: p* = e / (e + (C-1) e^(-1/(C-1))); 0.252 for 10 classes, 0.131 for 20.
    ``alone``: what one item can reach, 1 / (1 + (C-1) e^-2) (0.451 for 10 classes), with
    every other centre antipodal to it, so only at the other classes' expense."""
    c = int(n_classes)
    if c < 2:
        return 1.0
    if alone:
        return 1 / (1 + (c - 1) * math.exp(-2))
    return math.e / (math.e + (c - 1) * math.exp(-1 / (c - 1)))


def difficulty_floor(n_classes: int, q: float, alone: bool = False) -> float:
    """The smallest difficulty l = L_q(p_img) + L_q(p_txt) all classes reach together:
    2 L_q(p*) with p* from :func:`best_label_mass` (2.72 for 10 classes at q = 0.01;
    ``alone``: one item's, 1.58)."""
    p = best_label_mass(n_classes, alone)
    return 2 * float(lq_loss(torch.tensor(p, dtype=torch.float64), q))


def weight_ceiling(n_classes: int, q: float, gamma: float) -> float:
    """The largest linear self-paced weight max(0, 1 - l/gamma) at the difficulty floor:
    0.092 for 10 classes at gamma = 3; 0 when gamma is at or below the floor."""
    return max(0.0, 1 - difficulty_floor(n_classes, q) / gamma)


# a mechanism is off when fewer than this share of the items have a nonzero weight ...
DEAD_SHARE = 0.01
# ... for at least this many consecutive epochs after the warm-up
DEAD_EPOCHS = 5


# --------------------------------------------------------------------------- networks


class UnitHash(nn.Module):
    """d -> hidden -> hidden -> K (no bias) -> tanh -> unit L2 norm; the last layer's
    weight is uniform in +-1/sqrt(init_dim), as in the official code."""

    def __init__(
        self,
        d_in: int,
        hidden: int,
        bits: int,
        *,
        bias_last: bool = False,
        init_dim: int | None = None,
    ):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_in, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, bits, bias=bias_last),
        )
        bound = 1 / math.sqrt(init_dim or d_in)
        nn.init.uniform_(self.layers[-1].weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.tanh(self.layers(x)), dim=1)


class CentreNet(nn.Module):
    """Hash networks per modality plus a class-centre network built once the number of
    classes is known (``setup``); ``load_state_dict`` rebuilds it from the saved shapes."""

    def __init__(self, image_dim: int, text_dim: int, hidden: int, bits: int):
        super().__init__()
        self.hidden, self.bits = hidden, bits
        self.image = UnitHash(image_dim, hidden, bits)
        self.text = UnitHash(text_dim, hidden, bits)
        self.centres: UnitHash | None = None

    def ensure_centres(self, n_classes: int) -> None:
        if self.centres is not None:
            have = self.centres.layers[0].in_features
            if have != n_classes:
                raise ValueError(
                    f"the centre network has {have} classes, the labels have {n_classes} columns"
                )
            return
        device = self.image.layers[0].weight.device
        self.centres = UnitHash(n_classes, self.hidden, self.bits, bias_last=True).to(device)

    def centre_codes(self) -> torch.Tensor:
        assert self.centres is not None
        c = self.centres.layers[0].in_features
        return self.centres(torch.eye(c, device=self.centres.layers[0].weight.device))

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False):
        key = "centres.layers.0.weight"
        if key in state and self.centres is None:
            self.ensure_centres(int(state[key].shape[1]))
        return super().load_state_dict(state, strict=strict, assign=assign)


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class CentreParams(DeepParams):
    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-4
    hidden: int = 4096


class CentreHashing(DeepMethod):
    """The shared frame of RSHNL and its centre-loss baselines: unit-norm hash codes per
    modality, class centres from the centre network, softmax over cosine logits; a
    subclass defines ``objective`` on the batch's codes and label masses."""

    Params: ClassVar[type[CentreParams]] = CentreParams
    supervised = True
    drop_last = True

    def build(self) -> None:
        p = self.params
        self.net = CentreNet(self.image_dim, self.text_dim, p.hidden, self.bits)

    def setup(self, data: TrainData) -> None:
        super().setup(data)
        if data.labels is None:
            raise ValueError(f"{self.name} is supervised: the training data has no labels")
        self.net.ensure_centres(int(data.labels.shape[1]))
        self.net.to(self.device)

    def configure_optimizer(self, steps_per_epoch: int):
        p = self.params
        groups = [
            {"params": self.net.centres.parameters()},
            {"params": [*self.net.image.parameters(), *self.net.text.parameters()]},
        ]
        return torch.optim.Adam(groups, lr=p.lr, fused=True), None

    def project(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        return getattr(self.net, modality)(x)

    def masses(self, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor):
        h_img, h_txt = self.net.image(image), self.net.text(text)
        w = self.net.centre_codes()
        return h_img, h_txt, label_mass(h_img, w, labels), label_mass(h_txt, w, labels)

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        h_img, h_txt, p_img, p_txt = self.masses(batch.image, batch.text, batch.labels)
        return self.objective(h_img, h_txt, p_img, p_txt, epoch)

    def objective(self, h_img, h_txt, p_img, p_txt, epoch: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class RSHNLParams(CentreParams):
    q: float = 0.01  # L_q exponent (CAL and CHL)
    tau: float = 1.0  # CHL temperature
    alpha: float = 0.1  # weight of CHL (XMedia; wiki 0.05, INRIA 0.3, XMediaNet 0.05)
    lamda: float = 1.0  # weight of CAL
    gamma: float = 5.0  # SPL pace (XMedia; wiki 3, INRIA 8, XMediaNet 9)
    tp: int = 5  # warm-up epochs before the self-paced weights (epochs count from 0)
    self_paced: bool = True
    linear: bool = True  # linear SPL weights; false = hard 0/1 weights


class RSHNL(CentreHashing):
    name = "rshnl"
    Params = RSHNLParams
    citation = (
        "Pu et al., Robust Self-Paced Hashing for Cross-Modal Retrieval with Noisy "
        "Labels, AAAI 2025"
    )
    sample_weights_kind = "self-paced weight max(0, 1 - l/gamma)"

    def difficulty(self, p_img: torch.Tensor, p_txt: torch.Tensor) -> torch.Tensor:
        q = self.params.q
        return lq_loss(p_img, q) + lq_loss(p_txt, q)

    def objective(self, h_img, h_txt, p_img, p_txt, epoch):
        p = self.params
        ell = self.difficulty(p_img, p_txt)
        if p.self_paced and epoch >= p.tp:
            w, reg = self_paced(ell, p.gamma, p.linear)
        else:
            w, reg = torch.ones_like(ell), torch.zeros_like(ell)
        self._last_weights = w.detach()
        self._track_difficulty(ell.detach())
        cal = (w * ell + reg).mean()
        chl = contrastive_lq(h_img, h_txt, p.tau, p.q)
        return {
            "loss": p.lamda * cal + p.alpha * chl,
            "cal": cal,
            "chl": chl,
            "difficulty": ell.detach().mean(),
            "weight": w.mean(),
            "weight_nonzero": (w > 0).to(w.dtype).mean(),
        }

    def _track_difficulty(self, ell: torch.Tensor) -> None:
        """The epoch's smallest and largest per-item difficulty, kept on the device."""
        lo, hi = ell.min(), ell.max()
        have = getattr(self, "_range", None)
        self._range = (lo, hi) if have is None else (have[0].minimum(lo), have[1].maximum(hi))

    def on_epoch_start(self, epoch: int) -> None:
        self._range = None

    def epoch_log(self) -> dict[str, float]:
        if getattr(self, "_range", None) is None:
            return {}
        lo, hi = torch.stack(self._range).tolist()
        return {"difficulty_min": lo, "difficulty_max": hi}

    def training_diagnostics(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """``self_paced``: the share of items with a nonzero weight per epoch, and, when it
        stays below 1 % for 5 epochs after the warm-up, a warning naming gamma, the
        difficulty range of those epochs and the floor the cosine logits put on it."""
        p = self.params
        if not p.self_paced:
            return {}
        rows = [r for r in history if r["epoch"] > p.tp and "weight_nonzero" in r]
        runs, run = [], []
        for r in rows:  # runs of consecutive epochs below the share; the longest counts
            run = [*run, r] if r["weight_nonzero"] < DEAD_SHARE else []
            runs.append(run)
        dead = max(runs, key=len, default=[])
        dead = dead if len(dead) >= DEAD_EPOCHS else []
        n_classes = self.net.centres.layers[0].in_features if self.net.centres else 0
        floor = difficulty_floor(n_classes, p.q)
        info: dict[str, Any] = {
            "gamma": p.gamma,
            "n_classes": n_classes,
            "difficulty_floor": floor,
            "difficulty_floor_one_item": difficulty_floor(n_classes, p.q, alone=True),
            "weight_ceiling": weight_ceiling(n_classes, p.q, p.gamma),
            "nonzero_share": [round(r["weight_nonzero"], 6) for r in rows],
            "switched_off": bool(dead),
        }
        if not dead:
            return {"self_paced": info}
        lo = min(r.get("difficulty_min", r["difficulty"]) for r in dead)
        hi = max(r.get("difficulty_max", r["difficulty"]) for r in dead)
        info.update(off_epochs=[dead[0]["epoch"], dead[-1]["epoch"]], difficulty_range=[lo, hi])
        warning = (
            f"self-paced weights switched off: under {DEAD_SHARE:.0%} of the training items "
            f"had a nonzero weight in epochs {dead[0]['epoch']}-{dead[-1]['epoch']} "
            f"(gamma = {p.gamma:g}, difficulty {lo:.2f}-{hi:.2f}); with unit-norm codes and "
            f"centres the logits are cosines, so {n_classes} classes together keep the "
            f"difficulty at or above {floor:.2f} (one item alone "
            f"{info['difficulty_floor_one_item']:.2f}) and the weight at or below "
            f"{info['weight_ceiling']:.3f}: gamma must lie well above the difficulty range "
            "for the weights to select items"
        )
        return {"self_paced": info, "warnings": [warning]}

    def loss(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """The objective, plus (noisy-label track only, diagnostics) the mean weight of
        the batch's flipped and clean items, from the clean labels the loss never sees."""
        terms = super().loss(batch, epoch)
        data = getattr(self, "data", None)
        clean = data.clean_labels if data is not None else None
        if clean is not None:
            flipped = (batch.labels != clean[batch.idx]).any(dim=1)
            w = self._last_weights
            if flipped.any() and not flipped.all():
                terms["weight_flipped"] = w[flipped].mean()
                terms["weight_clean"] = w[~flipped].mean()
        return terms

    @torch.no_grad()
    def sample_weights(self, data: TrainData) -> np.ndarray:
        """The linear self-paced weight of every training item under the current model
        (with its noisy label), whatever the epoch: what NSH would give it now."""
        self.net.eval()
        out = []
        for start in range(0, len(data), 4096):
            sl = slice(start, start + 4096)
            _, _, p_img, p_txt = self.masses(data.image[sl], data.text[sl], data.labels[sl])
            w, _ = self_paced(self.difficulty(p_img, p_txt), self.params.gamma, self.params.linear)
            out.append(w.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)
