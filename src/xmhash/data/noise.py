"""The noisy-label stage: corrupt the training labels at a controlled rate.

Only the training items' labels are corrupted; validation, query and database labels
stay clean (model selection and evaluation use the clean ones). The corruption is a
function of (clean labels, kind, rate, seed) only, so every method, code length and
training seed that shares a split shares the same noisy labels.

Kinds (``rate`` r in [0, 1]):

* ``sym``: single-label. Exactly floor(r*N) training items, drawn uniformly, get a
  class drawn uniformly from the C-1 *other* classes, so the realised rate is r (up to
  the floor). The usual definition of symmetric noise.
* ``symall``: single-label, the RSHNL/MRL official code's variant
  (``load_data.get_noisylabels``): floor(r*N) items get a class drawn uniformly from
  *all* C classes, so the true class comes back with probability 1/C and the realised
  rate is about r*(1-1/C).
* ``asym``: single-label, class-dependent ("pair flip"): floor(r*N) items drawn
  uniformly get class (c+1) mod C, a fixed class-pair map (the usual asymmetric model
  of Han et al., NeurIPS 2018). The official RSHNL code has only a stub for ``asym``
  (it leaves the selected rows all-zero); this is not that stub.
* ``set``: multi-label set replacement, the multi-hot generalisation of ``sym``:
  floor(r*N) items get a label set of the same size drawn uniformly among the sets of
  that size that differ from the true one (label columns uniform, as in the official
  code's multi-hot path, but the true set is excluded so every selected item changes).

Single-label kinds refuse multi-hot data (and ``set`` works on both). Which items are
corrupted and which classes they get both come from one ``numpy`` generator seeded
with ``seed``.

File format (this module owns it): ``.npz`` with ``rows`` (int64, the training rows of
the feature file, in split order), ``labels`` (uint8 (N, C), the noisy labels),
``clean`` (uint8 (N, C)), ``flipped`` (bool (N,), noisy != clean), ``selected`` (bool
(N,), drawn for corruption; differs from ``flipped`` only for ``symall``), and scalars
``kind``, ``rate``, ``seed``, ``realised_rate``.

The per-sample weights a method gives the training items (RSHNL's self-paced weights)
are written with :func:`write_weights` next to the run (``sample_weights.npz``: rows,
weights, flipped, kind), read with :func:`read_weights`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmhash.io import atomic_path

log = logging.getLogger(__name__)

KINDS = ("sym", "symall", "asym", "set")
SINGLE_LABEL_KINDS = frozenset({"sym", "symall", "asym"})
NOISE_FORMAT = 1
_TAG = re.compile(r"^(?P<kind>[a-z]+?)(?P<rate>[01](?:\.\d+)?)$")


@dataclass
class NoisyLabels:
    rows: np.ndarray
    labels: np.ndarray
    clean: np.ndarray
    flipped: np.ndarray
    selected: np.ndarray
    kind: str
    rate: float
    seed: int

    @property
    def realised_rate(self) -> float:
        return float(self.flipped.mean()) if len(self.flipped) else 0.0


def tag(kind: str, rate: float) -> str:
    """The path component of a noise setting, e.g. ``sym0.5``; inverse of :func:`parse_tag`."""
    return f"{kind}{rate:g}"


def parse_tag(text: str) -> tuple[str, float]:
    m = _TAG.match(text)
    if not m or m["kind"] not in KINDS:
        raise ValueError(
            f"noise tag {text!r}: expected <kind><rate> with kind in {KINDS}, e.g. 'sym0.5'"
        )
    return m["kind"], float(m["rate"])


def is_single_label(labels: np.ndarray) -> bool:
    return bool(np.all(labels.sum(axis=1) == 1))


def corrupt(labels: np.ndarray, kind: str, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copy of ``labels`` (N, C) 0/1 and the mask of items drawn for corruption."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (N, C), got shape {labels.shape}")
    if kind not in KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; known: {KINDS}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate}")
    n, c = labels.shape
    if c < 2:
        raise ValueError(f"noise needs at least 2 label columns, got {c}")
    if kind in SINGLE_LABEL_KINDS and not is_single_label(labels):
        counts = np.unique(labels.sum(axis=1))
        raise ValueError(
            f"noise kind {kind!r} needs single-label data (one positive per row); "
            f"these labels have {counts.tolist()} positives per row: use kind 'set'"
        )
    rng = np.random.default_rng(seed)
    selected = np.zeros(n, bool)
    selected[rng.permutation(n)[: int(np.floor(rate * n + 1e-9))]] = True
    out = labels.astype(np.uint8, copy=True)
    idx = np.flatnonzero(selected)
    if kind in SINGLE_LABEL_KINDS:
        true = labels[idx].argmax(axis=1)
        if kind == "sym":
            new = (true + rng.integers(1, c, size=len(idx))) % c  # uniform over the others
        elif kind == "symall":
            new = rng.integers(0, c, size=len(idx))
        else:  # asym
            new = (true + 1) % c
        out[idx] = 0
        out[idx, new] = 1
    else:  # set replacement
        for i in idx:
            k = int(labels[i].sum())
            if k == 0 or k == c:
                continue  # no other set of that size exists
            while True:
                cols = rng.choice(c, size=k, replace=False)
                row = np.zeros(c, np.uint8)
                row[cols] = 1
                if not np.array_equal(row, labels[i]):
                    break
            out[i] = row
    return out, selected


def make_noisy(
    labels: np.ndarray, rows: np.ndarray, kind: str, rate: float, seed: int
) -> NoisyLabels:
    clean = np.asarray(labels).astype(np.uint8)
    noisy, selected = corrupt(clean, kind, rate, seed)
    flipped = np.any(noisy != clean, axis=1)
    return NoisyLabels(
        rows=np.asarray(rows, np.int64),
        labels=noisy,
        clean=clean,
        flipped=flipped,
        selected=selected,
        kind=kind,
        rate=float(rate),
        seed=int(seed),
    )


def write_noise(path: str | os.PathLike, nl: NoisyLabels) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            format=NOISE_FORMAT,
            rows=nl.rows,
            labels=nl.labels,
            clean=nl.clean,
            flipped=nl.flipped,
            selected=nl.selected,
            kind=nl.kind,
            rate=nl.rate,
            seed=nl.seed,
            realised_rate=nl.realised_rate,
        )


def read_noise(path: str | os.PathLike) -> NoisyLabels:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no noisy-label file at {path}: run the noise stage first")
    with np.load(path) as z:
        missing = [
            k
            for k in ("rows", "labels", "clean", "flipped", "selected", "kind", "rate", "seed")
            if k not in z
        ]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}; not a noisy-label file")
        nl = NoisyLabels(
            rows=z["rows"],
            labels=z["labels"],
            clean=z["clean"],
            flipped=z["flipped"],
            selected=z["selected"],
            kind=str(z["kind"]),
            rate=float(z["rate"]),
            seed=int(z["seed"]),
        )
    n = len(nl.rows)
    for key in ("labels", "clean", "flipped", "selected"):
        if len(getattr(nl, key)) != n:
            raise ValueError(
                f"{path}: key {key!r} has {len(getattr(nl, key))} rows, expected "
                f"{n} (one per entry of 'rows')"
            )
    return nl


def run_noise(
    *, features: str, split: str, out: str, kind: str, rate: float, seed: int
) -> NoisyLabels:
    """The noise stage: the split's training labels, corrupted, to ``out``."""
    from xmhash.data.splits import load_split
    from xmhash.features.store import read_labels

    rows = load_split(split).train
    labels = read_labels(features)[rows]
    nl = make_noisy(labels, rows, kind, rate, seed)
    write_noise(out, nl)
    log.info(
        "%s noise at rate %g (seed %d) on %d training items of %s: %d flipped, realised rate %.4f",
        kind,
        rate,
        seed,
        len(rows),
        features,
        int(nl.flipped.sum()),
        nl.realised_rate,
    )
    return nl


def train_labels_for(path: str | os.PathLike, train_rows: np.ndarray) -> np.ndarray:
    """The noisy labels of ``path``, checked against the split's training rows."""
    nl = read_noise(path)
    if not np.array_equal(nl.rows, np.asarray(train_rows)):
        raise ValueError(
            f"{path}: its 'rows' ({len(nl.rows)}) are not the split's training rows "
            f"({len(train_rows)}); rebuild it from the same split"
        )
    return nl.labels


# --------------------------------------------------------------------------- sample weights


def write_weights(
    path: str | os.PathLike, rows: np.ndarray, weights: np.ndarray, flipped: np.ndarray, kind: str
) -> None:
    """Per-training-item weights of a noisy-track run (``kind``: what the weights are)."""
    rows, weights, flipped = np.asarray(rows), np.asarray(weights, np.float32), np.asarray(flipped)
    if not len(rows) == len(weights) == len(flipped):
        raise ValueError(
            f"{path}: rows/weights/flipped lengths differ: {len(rows)}, "
            f"{len(weights)}, {len(flipped)}"
        )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, rows=rows.astype(np.int64), weights=weights, flipped=flipped.astype(bool), kind=kind
        )


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    with np.load(path) as z:
        missing = [k for k in ("rows", "weights", "flipped", "kind") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}; not a sample-weights file")
        return {
            "rows": z["rows"],
            "weights": z["weights"],
            "flipped": z["flipped"],
            "kind": str(z["kind"]),
        }


def separation_auc(weights: np.ndarray, flipped: np.ndarray) -> float:
    """P(weight of a clean item > weight of a flipped item), ties counting 1/2 (ROC AUC)."""
    w = np.asarray(weights, np.float64)
    flipped = np.asarray(flipped, bool)
    n_pos, n_neg = int((~flipped).sum()), int(flipped.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(w, kind="stable")
    ranks = np.empty(len(w))
    sorted_w = w[order]
    # average ranks over ties
    uniq, start, counts = np.unique(sorted_w, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[~flipped].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
