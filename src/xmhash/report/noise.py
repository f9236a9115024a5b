"""The noisy-label track's report piece: how well per-sample weights separate flipped
from clean training items (histograms, one panel per noise setting x method)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xmhash.data.noise import read_weights, separation_auc  # noqa: E402
from xmhash.io import atomic_path  # noqa: E402

_RUN = re.compile(r"noise(?P<noise>[^/]+)/(?P<method>[^/]+)/(?P<bits>\d+)bits/seed\d+/")


def panel_title(method: str, noise: str, weights: np.ndarray, flipped: np.ndarray) -> str:
    """The AUC of the weights' separation of flipped from clean items; when every weight
    is 0 the mechanism switched itself off, and an AUC of 0.5 would hide that."""
    if not np.any(weights):
        return f"{method}, noise {noise}: every weight 0 (switched off)"
    return f"{method}, noise {noise}: AUC {separation_auc(weights, flipped):.3f}"


def weights_histogram(paths: Sequence[str], out: str, title: str = "") -> None:
    """Pool the ``sample_weights.npz`` files of each (noise, method) over bits and seeds;
    methods whose weights are uniform (plain losses) are left out."""
    pooled: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for p in paths:
        m = _RUN.search(Path(p).as_posix())
        w = read_weights(p)
        if m is None or w["kind"] == "uniform":
            continue
        pooled[(m["noise"], m["method"])].append(w)
    noises = sorted({k[0] for k in pooled})
    methods = sorted({k[1] for k in pooled})
    fig, axes = plt.subplots(
        max(1, len(noises)),
        max(1, len(methods)),
        figsize=(4.5 * max(1, len(methods)), 3 * max(1, len(noises))),
        squeeze=False,
    )
    if not pooled:
        axes[0, 0].text(
            0.5,
            0.5,
            "no method with per-sample weights on the noisy track",
            ha="center",
            va="center",
        )
        axes[0, 0].set_axis_off()
    for i, noise in enumerate(noises):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            runs = pooled.get((noise, method))
            if not runs:
                ax.set_axis_off()
                continue
            w = np.concatenate([r["weights"] for r in runs])
            f = np.concatenate([r["flipped"] for r in runs])
            bins = np.linspace(0, max(float(w.max()), 1e-6), 31)
            ax.hist(w[~f], bins=bins, alpha=0.6, density=True, label=f"clean ({(~f).sum()})")
            ax.hist(w[f], bins=bins, alpha=0.6, density=True, label=f"flipped ({f.sum()})")
            ax.set(
                title=panel_title(method, noise, w, f),
                xlabel=f"weight ({runs[0]['kind']})",
                ylabel="density",
            )
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def noise_table(
    metrics_tsv: str, out: str, metric: str = "map@all", methods: Sequence[str] | None = None
) -> str:
    """Markdown: per dataset and noise kind, rows = methods, columns = noise rate x bits,
    cells = mean over I->T/T->I and seeds of ``metric``; rate 0 is the clean run of the
    same method when the clean grid has it. Shows what the noise costs and what each
    method recovers."""
    import pandas as pd

    df = pd.read_csv(
        metrics_tsv, sep="\t", keep_default_na=False, dtype={"variant": str, "dataset": str}
    )
    df = df[(df["metric"] == metric) & df["task"].isin(["i2t", "t2i"])].copy()
    df["value"] = pd.to_numeric(df["value"])
    noisy = df[df["variant"].str.startswith("noise-")].copy()
    noisy["kind"] = noisy["variant"].str.slice(6).str.rstrip("0123456789.")
    noisy["rate"] = [
        float(v[6 + len(k) :]) for v, k in zip(noisy["variant"], noisy["kind"], strict=True)
    ]
    clean = df[df["variant"] == ""]
    lines = [f"# Noisy labels: {metric} (mean of I→T and T→I over seeds)", ""]
    for (dataset, kind), part in noisy.groupby(["dataset", "kind"], sort=True):
        present = list(dict.fromkeys(part["method"]))
        order = [m for m in (methods or present) if m in present]
        base = clean[(clean["dataset"] == dataset) & clean["method"].isin(order)].assign(rate=0.0)
        both = pd.concat([base, part])
        means = both.groupby(["method", "rate", "bits"])["value"].mean()
        cols = sorted({(r, b) for _, r, b in means.index})
        lines += [
            f"## {dataset}, noise {kind}",
            "",
            "| Method | " + " | ".join(f"{r:g} / {b} bits" for r, b in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        best = {c: max(means.get((m, *c), float("-inf")) for m in order) for c in cols}
        for m in order:
            cells = []
            for c in cols:
                v = means.get((m, *c))
                cells.append("–" if v is None else (f"**{v:.3f}**" if v == best[c] else f"{v:.3f}"))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return text
