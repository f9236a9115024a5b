"""The evaluation stage: ``codes.h5`` + labels -> ``metrics.json`` for one run.

Besides the metrics, ``metrics.json`` describes the codes themselves (``codes``: per set
and modality the number of distinct codes, the share of constant bits and the share of
items in the largest code bucket) and lists ``warnings``: collapsed codes (``collapsed``
is then true) and tasks whose mAP@all is at the chance level, then the training summary's own
``warnings`` (a mechanism that switched itself off, e.g. RSHNL's self-paced weights, whose
numbers are in ``self_paced``; UCMFH's paired test encoding, ``test_encoding``). Each
warning is also logged.

``database`` is the evaluation protocol's retrieval set (:data:`DATABASES`):
``retrieval`` ranks the split's database for every query (the hashing literature:
DJSRH, UCCH, ...); ``query`` ranks the query set itself, each query's own pair
included, as the RSHNL/MRL lineage does (500 XMedia queries against the same 500).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from xmhash import metrics
from xmhash.codes import Codes, load_codes
from xmhash.features.store import read_labels
from xmhash.io import read_json, write_json
from xmhash.provenance import provenance

log = logging.getLogger(__name__)

TASKS = {"i2t": ("image", "text"), "t2i": ("text", "image")}
DATABASES = ("retrieval", "query")


def retrieval_set(codes: Any, database: str) -> Any:
    """The coded items ranked for each query under the protocol ``database``."""
    if database not in DATABASES:
        raise ValueError(
            f"config.yaml: evaluation.database={database!r}, expected one of {list(DATABASES)}"
        )
    return codes.query if database == "query" else codes.database


def evaluate_run(
    *,
    codes: str,
    features: str,
    out: str,
    ks: Sequence[int],
    pn: Sequence[int],
    tie_seed: int,
    train_summary: str | None = None,
    meta: dict[str, Any] | None = None,
    database: str = "retrieval",
) -> dict[str, Any]:
    c = load_codes(codes)
    labels = read_labels(features)
    db = retrieval_set(c, database)
    if not len(c.query.index) or not len(db.index):
        raise ValueError(
            f"{codes} holds {len(c.query.index)} query and {len(db.index)} database items "
            f"(evaluation.database: {database}): nothing to evaluate. Give the dataset's "
            "split (datasets.<name>.split) query and database items, then rerun snakemake"
        )
    ql, dl = labels[c.query.index], labels[db.index]
    result: dict[str, Any] = {
        **(meta or {}),
        "method": c.attrs.get("method"),
        "bits": c.bits,
        "seed": c.attrs.get("seed"),
        "protocol": {**metrics.protocol(ks, pn, tie_seed), "database": database},
        "tasks": {},
    }
    for task, (qm, dm) in TASKS.items():
        result["tasks"][task] = metrics.evaluate(
            getattr(c.query, qm),
            getattr(db, dm),
            ql,
            dl,
            c.bits,
            ks=ks,
            pn=pn,
            tie_seed=tie_seed,
        )
        log.info(
            "%s: mAP@all %.4f (tie-aware %.4f)",
            task,
            result["tasks"][task]["map@all"],
            result["tasks"][task]["map@all_tie_aware"],
        )
    rnd = metrics.evaluate(
        metrics.random_codes(len(ql), c.bits, tie_seed + 1),
        metrics.random_codes(len(dl), c.bits, tie_seed + 2),
        ql,
        dl,
        c.bits,
        ks=ks,
        pn=(),
        tie_seed=tie_seed,
    )
    result["chance"] = {
        "map@all_expected": metrics.expected_random_map(ql, dl),
        "random_codes": {k: v for k, v in rnd.items() if k.startswith("map@")},
    }
    result["codes"] = code_statistics(c)
    result["warnings"] = code_warnings(result)
    result["collapsed"] = any(w.startswith("collapsed") for w in result["warnings"])
    if train_summary:
        summary = read_json(train_summary)
        result["selection"] = {
            k: summary.get(k) for k in ("selection", "select_metric", "epoch", "epochs", "val_map")
        }
        result["train_seconds"] = summary.get("seconds")
        # what training found about the method's own mechanism (RSHNL: self_paced) or
        # how it encodes (UCMFH: test_encoding)
        result["warnings"] += summary.get("warnings", [])
        result.update({k: summary[k] for k in METHOD_FIELDS if k in summary})
    for warning in result["warnings"]:
        log.warning("%s (%s bits, seed %s): %s", result["method"], c.bits, result["seed"], warning)
    result["provenance"] = provenance(
        {"codes": codes, "features": features, "train_summary": train_summary}
    )
    write_json(out, result)
    return result


# the training summary's fields about the method's mechanism that metrics.json repeats
METHOD_FIELDS = ("self_paced", "test_encoding")

# codes are collapsed when at most this share of the items have distinct codes, this share
# of the bits is constant, or one code holds this share of the items
COLLAPSE = {"distinct_share": 0.01, "constant_bits": 0.25, "largest_bucket": 0.5}
CHANCE_MARGIN = 0.02  # mAP@all within this of the expected random mAP: "at chance"


def code_statistics(c: Codes) -> dict[str, dict[str, dict[str, float]]]:
    """Per set (query, database) and modality: items, distinct codes, the share of bits
    that are the same for every item, and the share of items in the largest bucket."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for set_name in ("query", "database"):
        out[set_name] = {}
        for modality in ("image", "text"):
            packed = getattr(getattr(c, set_name), modality)
            n = len(packed)
            if n == 0:
                continue
            _, counts = np.unique(packed, axis=0, return_counts=True)
            ones = (c.unpacked(set_name, modality) > 0).mean(axis=0)
            out[set_name][modality] = {
                "items": n,
                "distinct": int(len(counts)),
                "constant_bits": float(np.mean((ones == 0) | (ones == 1))),
                "largest_bucket": float(counts.max() / n),
            }
    return out


def code_warnings(result: dict[str, Any]) -> list[str]:
    """Human-readable warnings about degenerate codes and chance-level tasks."""
    warnings = []
    for set_name, per_modality in result["codes"].items():
        for modality, s in per_modality.items():
            reasons = []
            if s["items"] > 1 and s["distinct"] <= max(1, COLLAPSE["distinct_share"] * s["items"]):
                reasons.append(f"{s['distinct']} distinct codes for {s['items']} items")
            if s["constant_bits"] >= COLLAPSE["constant_bits"]:
                reasons.append(f"{s['constant_bits']:.0%} of the bits constant")
            if s["items"] > 1 and s["largest_bucket"] >= COLLAPSE["largest_bucket"]:
                reasons.append(f"{s['largest_bucket']:.0%} of the items share one code")
            if reasons:
                warnings.append(f"collapsed {set_name} {modality} codes: " + ", ".join(reasons))
    chance = result["chance"]["map@all_expected"]
    for task, scores in result["tasks"].items():
        if scores["map@all"] < chance + CHANCE_MARGIN:
            warnings.append(
                f"{task} mAP@all {scores['map@all']:.3f} is at chance (expected random "
                f"{chance:.3f})"
            )
    return warnings
