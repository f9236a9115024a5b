"""The evaluation stage: ``codes.h5`` + labels -> ``metrics.json`` for one run.

``database`` is the evaluation protocol's retrieval set (:data:`DATABASES`):
``retrieval`` ranks the split's database for every query (the hashing literature:
DJSRH, UCCH, ...); ``query`` ranks the query set itself, each query's own pair
included, as the RSHNL/MRL lineage does (500 XMedia queries against the same 500).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from xmhash import metrics
from xmhash.codes import load_codes
from xmhash.features.store import read_labels
from xmhash.io import read_json, write_json

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
    if train_summary:
        summary = read_json(train_summary)
        result["selection"] = {
            k: summary.get(k) for k in ("selection", "epoch", "epochs", "val_map")
        }
        result["train_seconds"] = summary.get("seconds")
    write_json(out, result)
    return result
