"""Plots: mAP vs bits, PR curves by Hamming radius, P@N curves. One PNG per dataset each."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from xmhash.io import atomic_path  # noqa: E402
from xmhash.report.tables import TASK_NAMES  # noqa: E402


def _read(path: str) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"variant": str, "dataset": str})
    for col in ("value", "y"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _save(fig, out: str) -> None:
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _methods(df: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(df["method"]))
    return [m for m in (methods or present) if m in present]


def map_vs_bits(
    metrics_tsv: str,
    dataset: str,
    out: str,
    metric: str = "map@all",
    methods: Sequence[str] | None = None,
) -> None:
    df = _read(metrics_tsv)
    df = df[(df["dataset"] == dataset) & (df["metric"] == metric)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, task in zip(axes, TASK_NAMES, strict=True):
        part = df[df["task"] == task]
        for m in _methods(part, methods):
            s = part[part["method"] == m].groupby("bits")["value"].agg(["mean", "std"])
            ax.errorbar(s.index, s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3, label=m)
        floor = df[df["task"] == "chance"].groupby("bits")["value"].mean()
        if len(floor):
            ax.plot(floor.index, floor.values, "k--", lw=1, label="chance")
        ax.set(title=f"{dataset} {TASK_NAMES[task]}", xlabel="bits", ylabel=metric)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="best")
    _save(fig, out)


def curves(
    curves_tsv: str,
    dataset: str,
    out: str,
    kind: str,
    bits: int | None = None,
    methods: Sequence[str] | None = None,
) -> None:
    """``kind`` = 'pr' (precision vs recall by radius) or 'pn' (P@N vs N)."""
    df = _read(curves_tsv)
    df = df[df["dataset"] == dataset]
    bits = bits or int(df["bits"].max())
    df = df[df["bits"] == bits]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, task in zip(axes, TASK_NAMES, strict=True):
        part = df[df["task"] == task]
        for m in _methods(part, methods):
            mp = part[part["method"] == m]
            if kind == "pr":
                p = mp[mp["curve"] == "precision"].groupby("x")["y"].mean()
                r = mp[mp["curve"] == "recall"].groupby("x")["y"].mean()
                ax.plot(r.values, p.reindex(r.index).values, marker=".", label=m)
                ax.set(xlabel="recall", ylabel="precision")
            else:
                s = mp[mp["curve"] == "p@n"].groupby("x")["y"].mean()
                ax.plot(s.index, s.values, marker=".", label=m)
                ax.set(xlabel="N (top-ranked items)", ylabel="precision@N")
                ax.set_xscale("log")
        ax.set_title(f"{dataset} {TASK_NAMES[task]}, {bits} bits")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="best")
    _save(fig, out)
