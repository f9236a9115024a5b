"""Collect every run's ``metrics.json`` into tidy tables.

``metrics.tsv``: one row per (dataset, variant, method, bits, seed, task, metric) with its
value. ``task`` is ``i2t``/``t2i``, or ``chance`` for what a random ranking scores on the
same split: ``map@all`` its expected mAP@all, ``precision`` and ``p@N`` its expected
precision (:func:`random_ranking_precision`), the other ``map@`` variants those of random
codes. ``variant`` is empty for the standard protocol (other tracks, e.g. noisy labels,
name themselves there).

Every scalar a task reports reaches ``metrics.tsv`` (mAP variants, the tie-aware mAP,
query and database counts); ``p@n`` and ``pr`` are unfolded; a key of any other shape
stops the aggregation with its name, so no metric is ever left out silently.

``curves.tsv``: the PR points (by Hamming radius) and P@N points of every run.

``warnings.tsv``: one row per run and warning of its ``metrics.json`` (collapsed codes,
tasks at chance, mechanisms that switched themselves off), for the tables' notes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pandas as pd

from xmhash.io import atomic_path, read_json

KEYS = ["dataset", "variant", "method", "bits", "seed"]
CURVES = ("p@n", "pr")  # a task's structured entries, unfolded below


def _key(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": m.get("dataset", ""),
        "variant": m.get("variant", "") or "",
        "method": m["method"],
        "bits": int(m["bits"]),
        "seed": int(m["seed"]),
    }


def random_ranking_precision(task: dict[str, Any]) -> tuple[float, float] | None:
    """The expected precision of a random ranking, as (PR's average, P@N's average).

    A random ranking puts a relevant item at any rank with probability R/N (R relevant
    among N database items), so its expected precision is R/N at every N and at every
    Hamming radius. The PR curve averages over queries with R > 0: that is its
    precision at radius = bits, where every item is retrieved. P@N averages over all
    queries, counting the R = 0 ones as 0, hence the factor of queries with R > 0.
    """
    precision = task.get("pr", {}).get("precision")
    if not precision or precision[-1] != precision[-1]:
        return None
    n, without = task["n_query"], task.get("n_query_without_relevant", 0)
    return precision[-1], precision[-1] * (n - without) / n


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_warnings(m: dict[str, Any]) -> list[str]:
    """A run's warnings; ``collapsed`` without a warning that says so gets one."""
    warnings = [str(w) for w in m.get("warnings") or []]
    if m.get("collapsed") and not any(w.startswith("collapsed") for w in warnings):
        warnings.append("collapsed codes")
    return warnings


def tidy(
    results: Iterable[dict[str, Any]],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics, curves, warnings) frames of the runs' ``metrics.json`` contents."""
    rows, curves, flags = [], [], []
    for m in results:
        key = _key(m)
        flags += [{**key, "warning": w} for w in run_warnings(m)]
        for task, res in m["tasks"].items():
            for metric, value in res.items():
                if _scalar(value):
                    rows.append({**key, "task": task, "metric": metric, "value": value})
                elif metric not in CURVES:
                    raise ValueError(
                        f"{key['method']} {key['bits']} bits seed {key['seed']}: task {task} "
                        f"metric {metric!r} is neither a number nor one of {list(CURVES)}; "
                        "teach xmhash.report.aggregate.tidy its layout"
                    )
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
        levels = [random_ranking_precision(res) for res in m["tasks"].values()]
        levels = [lv for lv in levels if lv is not None]
        if levels:  # the same for every task: queries and database are the same items
            pr, pn = levels[0]
            rows.append({**key, "task": "chance", "metric": "precision", "value": pr})
            for n in next(iter(m["tasks"].values())).get("p@n", {}):
                rows.append({**key, "task": "chance", "metric": f"p@{n}", "value": pn})
        for metric, value in chance.get("random_codes", {}).items():
            if metric != "map@all":
                rows.append({**key, "task": "chance", "metric": metric, "value": value})
        if m.get("train_seconds") is not None:
            rows.append({**key, "task": "train", "metric": "seconds", "value": m["train_seconds"]})
    return (
        pd.DataFrame(rows),
        pd.DataFrame(curves),
        pd.DataFrame(flags, columns=[*KEYS, "warning"]),
    )


def aggregate(
    paths: Iterable[str | os.PathLike],
    metrics_out: str,
    curves_out: str,
    warnings_out: str | None = None,
) -> None:
    df, curves, flags = tidy(read_json(p) for p in paths)
    outs = [(df, metrics_out), (curves, curves_out)]
    for frame, out in outs + ([(flags, warnings_out)] if warnings_out else []):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
