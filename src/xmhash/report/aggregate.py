"""Collect every run's ``metrics.json`` into tidy tables.

``metrics.tsv``: one row per (dataset, variant, method, bits, seed, task, metric) with its
value. ``task`` is ``i2t``/``t2i``, or ``chance`` for the floor of random codes on the same
split. ``variant`` is empty for the standard protocol (other tracks, e.g. noisy labels,
name themselves there).

``curves.tsv``: the PR points (by Hamming radius) and P@N points of every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pandas as pd

from xmhash.io import atomic_path, read_json

KEYS = ["dataset", "variant", "method", "bits", "seed"]


def _key(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": m.get("dataset", ""),
        "variant": m.get("variant", "") or "",
        "method": m["method"],
        "bits": int(m["bits"]),
        "seed": int(m["seed"]),
    }


def tidy(results: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for m in results:
        key = _key(m)
        for task, res in m["tasks"].items():
            for metric, value in res.items():
                if metric.startswith("map@"):
                    rows.append({**key, "task": task, "metric": metric, "value": value})
            for n, value in res.get("p@n", {}).items():
                rows.append({**key, "task": task, "metric": f"p@{n}", "value": value})
                curves.append({**key, "task": task, "curve": "p@n", "x": int(n), "y": value})
            pr = res.get("pr", {})
            for r, p, rec in zip(
                pr.get("radius", []), pr.get("precision", []), pr.get("recall", []), strict=True
            ):
                curves.append({**key, "task": task, "curve": "precision", "x": r, "y": p})
                curves.append({**key, "task": task, "curve": "recall", "x": r, "y": rec})
        chance = m.get("chance", {})
        if "map@all_expected" in chance:
            rows.append(
                {**key, "task": "chance", "metric": "map@all", "value": chance["map@all_expected"]}
            )
        for metric, value in chance.get("random_codes", {}).items():
            if metric != "map@all":
                rows.append({**key, "task": "chance", "metric": metric, "value": value})
        if m.get("train_seconds") is not None:
            rows.append({**key, "task": "train", "metric": "seconds", "value": m["train_seconds"]})
    return pd.DataFrame(rows), pd.DataFrame(curves)


def aggregate(paths: Iterable[str | os.PathLike], metrics_out: str, curves_out: str) -> None:
    df, curves = tidy(read_json(p) for p in paths)
    for frame, out in ((df, metrics_out), (curves, curves_out)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
