"""Plots: mAP vs bits, PR curves by Hamming radius, P@N curves, training curves.

Every figure is written as PNG (for the report) and as vector PDF (for a paper), one
file per path given. Each method keeps one colour and marker in every figure
(:func:`method_styles`) and is named by its display name; the methods of the papers
xmhash reproduces are drawn thicker, on top and bold in the legend, whose title says so.
Every retrieval panel carries its chance level (:mod:`xmhash.report.aggregate` explains
how it is computed), and the number of seeds behind each mean is printed under the
figure. PR and P@N curves have one row of panels per code length, each curve the mean
over seeds with a band of ± one standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from xmhash.io import atomic_path  # noqa: E402
from xmhash.report.names import PAPER_METHODS, display_name  # noqa: E402
from xmhash.report.tables import TASK_NAMES, metric_label, read_tsv, seeds_phrase  # noqa: E402

# The methods of the papers this project reproduces (PAPER_METHODS): fixed, salient styles.
SEED_PAPERS = {
    "enhash": ("#d62728", "*"),  # red star
    "vtmuch": ("#000000", "P"),  # black plus
    "rshnl": ("#e6007e", "X"),  # magenta cross
}
# Every other method: a colour and a marker cycled at coprime periods (9 and 8), so
# the first 72 methods all differ in the (colour, marker) pair.
_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#e377c2",
]
_MARKERS = ["o", "s", "^", "v", "D", "<", ">", "h"]
CHANCE_STYLE = {"color": "0.35", "ls": "--", "lw": 1.2, "label": "chance"}
PAPERS_LEGEND = "bold, thick: the methods of\nthe papers xmhash reproduces"


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    highlight: bool

    def kwargs(self) -> dict:
        if self.highlight:
            return {"color": self.color, "marker": self.marker, "lw": 2.4, "ms": 10, "zorder": 5}
        return {"color": self.color, "marker": self.marker, "lw": 1.3, "ms": 6, "zorder": 3}


def method_styles(methods: Sequence[str]) -> dict[str, Style]:
    """{method: Style}, stable for a given method list; no two methods share both colour
    and marker (up to 72 methods besides the seed papers')."""
    styles, i = {}, 0
    for m in dict.fromkeys(methods):
        if m in SEED_PAPERS:
            styles[m] = Style(*SEED_PAPERS[m], highlight=True)
        else:
            styles[m] = Style(_COLOURS[i % len(_COLOURS)], _MARKERS[i % len(_MARKERS)], False)
            i += 1
    return styles


def _outputs(out: str | Sequence[str]) -> list[str]:
    return [out] if isinstance(out, str) else list(out)


def save_figure(
    fig: Figure, out: str | Sequence[str], note: str = "", legend: bool = True
) -> Figure:
    """Write ``fig`` to each path in the format of its suffix (.png at 150 dpi, .pdf and
    .svg as vectors), with one legend of all panels to their right and ``note`` under
    them."""
    if legend:
        _shared_legend(fig)
    fig.tight_layout()
    if note:
        fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=9, color="0.25")
    for path in _outputs(out):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=150, bbox_inches="tight")
    plt.close(fig)  # out of pyplot's registry; the caller may still inspect it
    return fig


def _shared_legend(fig: Figure) -> None:
    handles, labels = fig.axes[0].get_legend_handles_labels()
    for ax in fig.axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if "chance" in labels:  # last, after the methods
        i = labels.index("chance")
        handles.append(handles.pop(i))
        labels.append(labels.pop(i))
    if handles:
        papers = {display_name(m) for m in PAPER_METHODS}
        legend = fig.legend(
            handles,
            labels,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            title=PAPERS_LEGEND if papers & set(labels) else None,
            title_fontsize=8,
            alignment="left",
        )
        for text in legend.get_texts():
            if text.get_text() in papers:
                text.set_fontweight("bold")


def _methods(df: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(df["method"]))
    return [m for m in (methods or present) if m in present]


def _chance(metrics: pd.DataFrame, dataset: str, metric: str) -> pd.Series:
    """Chance level of ``metric`` by bits (mean over seeds) on ``dataset``'s standard track;
    ``p@n``: that of P@N, the same for every N."""
    name = metrics["metric"]
    sel = metrics[
        (metrics["dataset"] == dataset)
        & (metrics["variant"] == "")
        & (metrics["task"] == "chance")
        & (name.str.fullmatch(r"p@\d+") if metric == "p@n" else name == metric)
    ]
    return sel.groupby("bits")["value"].mean()


def _seeds_note(df: pd.DataFrame, what: str) -> str:
    counts = df.groupby(["method", "bits"])["seed"].nunique()
    return f"{what} over {seeds_phrase(counts)}"


def map_vs_bits(
    metrics_tsv: str,
    dataset: str,
    out: str | Sequence[str],
    metric: str = "map@all",
    methods: Sequence[str] | None = None,
) -> Figure:
    df = read_tsv(metrics_tsv)
    # the standard protocol only; other tracks (variant, e.g. noise-sym0.5) have their own
    df = df[(df["dataset"] == dataset) & (df["metric"] == metric) & (df["variant"] == "")]
    runs = df[df["task"].isin(TASK_NAMES)]
    styles = method_styles(methods or list(dict.fromkeys(runs["method"])))
    bits = sorted(int(b) for b in runs["bits"].unique())
    floor = _chance(df, dataset, metric)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, task in zip(axes, TASK_NAMES, strict=True):
        part = runs[runs["task"] == task]
        for m in _methods(part, methods):
            s = part[part["method"] == m].groupby("bits")["value"].agg(["mean", "std", "count"])
            yerr = s["std"].where(s["count"] >= 2)  # no bar from a single seed
            ax.errorbar(
                s.index,
                s["mean"],
                yerr=yerr,
                capsize=3,
                label=display_name(m),
                **styles[m].kwargs(),
            )
        if len(floor):
            ax.plot(floor.index, floor.values, **CHANCE_STYLE)
        ax.set(title=f"{dataset} {TASK_NAMES[task]}", xlabel="code length (bits)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric_label(metric))
    return save_figure(fig, out, _seeds_note(runs, "Mean ± std"))


def curves(
    curves_tsv: str,
    metrics_tsv: str,
    dataset: str,
    out: str | Sequence[str],
    kind: str,
    bits: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
) -> Figure:
    """``kind`` = 'pr' (precision vs recall by radius) or 'pn' (P@N vs N); one row of
    panels (I→T, T→I) per code length (``bits``: all of the grid by default). Each curve
    is the mean over seeds with a ± one std band; the dashed line is the precision a
    random ranking is expected to reach (the same at every radius and every N)."""
    df = read_tsv(curves_tsv)
    df = df[(df["dataset"] == dataset) & (df["variant"] == "")]  # the standard protocol only
    lengths = sorted(int(b) for b in (bits or df["bits"].unique()))
    df = df[df["bits"].isin(lengths)]
    styles = method_styles(methods or list(dict.fromkeys(df["method"])))
    chance = _chance(read_tsv(metrics_tsv), dataset, "precision" if kind == "pr" else "p@n")
    fig, axes = plt.subplots(
        len(lengths), 2, figsize=(9, 3.0 * len(lengths)), sharey=True, squeeze=False
    )
    for row, b in zip(axes, lengths, strict=True):
        for ax, task in zip(row, TASK_NAMES, strict=True):
            part = df[(df["task"] == task) & (df["bits"] == b)]
            for m in _methods(part, methods):
                _curve(ax, part[part["method"] == m], kind, display_name(m), styles[m])
            if b in chance.index:
                ax.axhline(chance[b], **CHANCE_STYLE)
            ax.set_title(f"{dataset} {TASK_NAMES[task]}, {b} bits")
            ax.set_ylabel("precision" if kind == "pr" else "precision@N")
            ax.grid(alpha=0.3)
    return save_figure(fig, out, _seeds_note(df, "Mean, band ± std"))


def _curve(ax, runs: pd.DataFrame, kind: str, label: str, style: Style) -> None:
    """One method's mean curve over its seeds, with a ± std band where there are two."""
    kw = {**style.kwargs(), "ms": style.kwargs()["ms"] * 0.6}
    if kind == "pr":
        by_x = runs.pivot_table(index="x", columns="curve", values="y", aggfunc=["mean", "std"])
        by_x = by_x.dropna(subset=[("mean", "precision"), ("mean", "recall")])
        x, y = by_x[("mean", "recall")], by_x[("mean", "precision")]
        std = by_x[("std", "precision")] if ("std", "precision") in by_x else None
        ax.plot(x.values, y.values, label=label, markevery=0.1, **kw)
        ax.set_xlabel("recall")
    else:
        s = runs[runs["curve"] == "p@n"].groupby("x")["y"].agg(["mean", "std"])
        x, y, std = s.index.to_series(), s["mean"], s["std"]
        ax.plot(x.values, y.values, label=label, **kw)
        ax.set_xlabel("N (top-ranked items)")
        ax.set_xscale("log")
        ax.set_xticks(x.values, [str(int(n)) for n in x.values])  # the N evaluated
        ax.minorticks_off()
    if std is not None and std.notna().any():
        lo, hi = (y - std.fillna(0)).values, (y + std.fillna(0)).values
        ax.fill_between(x.values, lo, hi, color=style.color, alpha=0.15, lw=0, zorder=1)


# history columns that are bookkeeping, not loss terms
_NOT_LOSSES = {"epoch", "seconds", "lr", "val_map"}


def read_history(paths: Sequence[str]) -> pd.DataFrame:
    """The ``train_log.csv`` files of runs ``.../{method}/{bits}bits/seed{seed}/``, stacked
    with method, bits and seed columns taken from the path."""
    frames = []
    for p in paths:
        parts = Path(p).parts
        h = pd.read_csv(p)
        h["method"] = parts[-4]
        h["bits"] = int(parts[-3].removesuffix("bits"))
        h["seed"] = int(parts[-2].removeprefix("seed"))
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def training_curves(
    history_csvs: Sequence[str],
    dataset: str,
    out: str | Sequence[str],
    bits: int | None = None,
    methods: Sequence[str] | None = None,
) -> Figure:
    """One panel per trained method: each loss term over epochs (mean over seeds, at
    ``bits``, the largest code length by default), and the validation mAP on a right-hand
    axis where the runs selected by validation logged it. Closed-form methods have no
    epochs and are listed under the figure."""
    h = read_history(history_csvs)
    if len(h):
        bits = bits or int(h["bits"].max())
        h = h[h["bits"] == bits]
    present = list(dict.fromkeys(h["method"])) if len(h) else []
    order = [m for m in (methods or present) if m in present]
    deep = [m for m in order if h.loc[h["method"] == m, "epoch"].max() > 0]
    closed = [m for m in order if m not in deep]
    cols = min(3, max(1, len(deep)))
    rows = max(1, math.ceil(len(deep) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(deep) :]:
        ax.set_axis_off()
    if not deep:
        axes[0, 0].text(0.5, 0.5, "no method trained over epochs", ha="center", va="center")
    for ax, m in zip(axes.flat, deep, strict=False):
        part = h[h["method"] == m]
        mean = part.groupby("epoch").mean(numeric_only=True).dropna(axis=1, how="all")
        terms = [c for c in mean.columns if c not in _NOT_LOSSES | {"bits", "seed"}]
        palette = iter(plt.get_cmap("tab20").colors)  # up to 20 terms, each its own colour
        for c in terms:
            style = {"color": "k", "lw": 2.2} if c == "loss" else {"color": next(palette)}
            ax.plot(mean.index, mean[c], label=c, lw=style.pop("lw", 1.1), **style)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(display_name(m), fontweight="bold" if m in PAPER_METHODS else "normal")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss terms")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        anchor = 1.02
        if "val_map" in mean:
            ax2 = ax.twinx()
            v = mean["val_map"].dropna()
            handles += ax2.plot(v.index, v.values, "k:", marker=".", lw=1.5)
            labels.append("val mAP (right)")
            ax2.set_ylabel("validation mAP@all", fontsize=8)
            anchor = 1.16
        # loss terms differ by method: one legend per panel, beside it
        ax.legend(
            handles,
            labels,
            fontsize=6,
            loc="upper left",
            bbox_to_anchor=(anchor, 1.0),
            frameon=False,
        )
    note = _seeds_note(h, f"Loss terms at {bits} bits, mean") if len(h) else ""
    if closed:
        note += f"; closed form (no epochs): {', '.join(map(display_name, closed))}"
    fig.suptitle(f"{dataset}: training curves")
    return save_figure(fig, out, note, legend=False)


# the figures of one dataset, each written as .png and .pdf (the plots rule's outputs)
DATASET_PLOTS = ("map_vs_bits", "pr", "pn", "training")


def dataset_plots(
    metrics_tsv: str,
    curves_tsv: str,
    history_csvs: Sequence[str],
    dataset: str,
    out: Mapping[str, str],
    methods: Sequence[str] | None = None,
) -> None:
    """Every figure of :data:`DATASET_PLOTS` for one dataset; ``out`` maps each name, and
    the name with ``_pdf`` (and ``_svg`` where given), to its file."""

    def paths(name: str) -> list[str]:
        return [out[k] for k in (name, f"{name}_pdf", f"{name}_svg") if k in out.keys()]

    map_vs_bits(metrics_tsv, dataset, paths("map_vs_bits"), methods=methods)
    for kind in ("pr", "pn"):
        curves(curves_tsv, metrics_tsv, dataset, paths(kind), kind=kind, methods=methods)
    training_curves(history_csvs, dataset, paths("training"), methods=methods)
