"""The export stage: a trained model + features + split -> ``codes.h5`` (and ``.mat``)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from xmhash.codes import Codes, export_mat, features_attrs, make_codeset, save_codes
from xmhash.data.splits import load_split
from xmhash.device import resolve_device
from xmhash.features.store import read_features
from xmhash.methods.base import Items, load_model

log = logging.getLogger(__name__)


def export_run(
    *,
    model: str,
    features: str,
    split: str,
    codes_out: str,
    mat_out: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    attrs: dict[str, Any] | None = None,
) -> Codes:
    if threads:
        torch.set_num_threads(threads)
    method = load_model(model, resolve_device(device))
    parts = ["image", "text", *(["texts"] if "texts" in method.needs else [])]
    feats = read_features(features, parts=parts)
    sp = load_split(split)
    sets = {}
    for name in ("query", "database"):
        rows = getattr(sp, name)
        items = Items(
            image=feats.image[rows],
            text=feats.text[rows],
            texts=[feats.texts[i] for i in rows] if feats.texts is not None else None,
        )
        codes = {m: method.encode(items, m) for m in ("image", "text")}
        sets[name] = make_codeset(codes["image"], codes["text"], feats.ids[rows], rows)
        balance = {m: float((c > 0).mean()) for m, c in codes.items()}
        log.info("%s: %d items, share of 1-bits %s", name, len(rows), balance)
        if min(balance.values()) in (0.0, 1.0):
            log.warning("%s codes are constant: the model collapsed", name)
    out = Codes(
        bits=method.bits,
        query=sets["query"],
        database=sets["database"],
        attrs={
            "method": method.name,
            "seed": method.seed,
            **features_attrs(features),
            **(attrs or {}),
        },
    )
    save_codes(codes_out, out)
    if mat_out:
        export_mat(mat_out, out)
    return out
