"""Comparison tables as the papers lay them out: one row per method, columns per task x bits.

Cells are the mean over seeds, ± the sample standard deviation when there are at least
two seeds. The title states the number of seeds; a cell with fewer seeds than the rest
of its table says so (``(n=1)``). The deviation is printed to one significant digit
(at most three decimals, ``<0.001`` below that): from two or three seeds it is a rough
spread, not a precise error bar, and more digits would claim otherwise. The best mean
of each column is bold. The last row is the chance level on the same split: the
expected mAP@all of a random ranking, the expected precision of a random ranking for
P@N, random codes for the other mAP variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from xmhash.io import atomic_path

TASK_NAMES = {"i2t": "I→T", "t2i": "T→I"}
CHANCE = "chance"


def read_tsv(path: str) -> pd.DataFrame:
    """``metrics.tsv`` or ``curves.tsv`` with the empty variant kept as "" and numbers parsed."""
    df = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"variant": str, "dataset": str})
    for col in ("value", "y"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def seeds_phrase(counts: Sequence[int] | pd.Series) -> str:
    """The number of seeds as a phrase: 2 seeds, or 1–2 seeds when cells differ."""
    counts = [int(c) for c in counts if c]
    if not counts:
        return "no seeds"
    lo, hi = min(counts), max(counts)
    return f"{hi} seed{'s' if hi > 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def format_std(std: float) -> str:
    """One significant digit, at most three decimals: 0.04, 0.004, <0.001."""
    if std < 0.0005:
        return "<0.001"
    digits = -math.floor(math.log10(std))
    if round(std, digits) >= 10.0 ** (1 - digits):  # 0.0096 rounds up to 0.01
        digits -= 1
    digits = min(3, max(1, digits))
    return f"{std:.{digits}f}"


def _seed_counts(table: pd.DataFrame) -> list[int]:
    return [v[2] for row in table.itertuples(index=False) for v in row if _is_cell(v) and v[2]]


def table_seeds(table: pd.DataFrame) -> int:
    """The usual number of seeds of a table's method cells (the most common; the larger
    on a tie)."""
    counts = _seed_counts(table)
    return max(set(counts), key=lambda c: (counts.count(c), c)) if counts else 0


def _is_cell(v) -> bool:
    return isinstance(v, tuple)


def comparison(
    df: pd.DataFrame, metric: str, methods: Sequence[str] | None = None
) -> dict[tuple[str, str], pd.DataFrame]:
    """{(dataset, variant): table} with rows = methods + chance, columns = (task, bits).

    Each cell is a (mean, std, n_seeds) tuple.
    """
    out = {}
    sel = df[df["metric"] == metric]
    for (dataset, variant), part in sel.groupby(["dataset", "variant"], sort=False, dropna=False):
        runs = part[part["task"].isin(TASK_NAMES)]
        stats = runs.groupby(["method", "task", "bits"])["value"].agg(["mean", "std", "count"])
        order = [
            m for m in (methods or runs["method"].unique()) if m in stats.index.get_level_values(0)
        ]
        cols = [(t, b) for t in TASK_NAMES for b in sorted(runs["bits"].unique())]
        table = pd.DataFrame(
            index=[*order, CHANCE], columns=pd.MultiIndex.from_tuples(cols), dtype=object
        )
        for m in order:
            for t, b in cols:
                if (m, t, b) in stats.index:
                    s = stats.loc[(m, t, b)]
                    table.loc[m, (t, b)] = (s["mean"], s["std"], int(s["count"]))
        floor = part[part["task"] == "chance"].groupby("bits")["value"].mean()
        for t, b in cols:
            if b in floor.index:
                table.loc[CHANCE, (t, b)] = (floor[b], float("nan"), 0)
        out[(str(dataset), str(variant or ""))] = table
    return out


def _cell(v, bold: bool, latex: bool, seeds: int = 0) -> str:
    """``mean ± std`` (std only from two or more seeds), ``(n=k)`` when k differs from the
    table's ``seeds``; published and chance cells (n = 0: no seeds of ours) stay bare."""
    if not _is_cell(v):
        return "–"
    mean, std, n = v
    text = f"{mean:.3f}"
    if n >= 2 and std == std:
        pm, std_text = (
            ("$\\pm$", format_std(std).replace("<", "$<$")) if latex else ("±", format_std(std))
        )
        text += f" {pm} {std_text}"
    if bold:
        text = f"**{text}**" if not latex else f"\\textbf{{{text}}}"
    if seeds and 0 < n != seeds:
        text += f" (n={n})"
    return text


def _spread(table: pd.DataFrame) -> str:
    counts = _seed_counts(table)
    n = seeds_phrase(counts)
    return f"mean ± std over {n}" if max(counts, default=0) >= 2 else f"one run each ({n})"


def _best(table: pd.DataFrame) -> dict:
    best = {}
    for col in table.columns:
        vals = [(v[0], m) for m, v in table[col].items() if isinstance(v, tuple) and m != CHANCE]
        if vals:
            best[col] = max(vals)[1]
    return best


def to_markdown(table: pd.DataFrame, title: str) -> str:
    best, seeds = _best(table), table_seeds(table)
    head = "| Method | " + " | ".join(f"{TASK_NAMES[t]} {b}" for t, b in table.columns) + " |"
    sep = "|---|" + "---|" * len(table.columns)
    lines = [f"### {title}", "", head, sep]
    for m, row in table.iterrows():
        label = "chance (random codes)" if m == CHANCE else m
        lines.append(
            f"| {label} | "
            + " | ".join(_cell(row[c], best.get(c) == m, False, seeds) for c in table.columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, title: str) -> str:
    best, seeds = _best(table), table_seeds(table)
    bits = sorted({b for _, b in table.columns})
    tasks = [t for t in TASK_NAMES if any(c[0] == t for c in table.columns)]
    spec = "l" + "|".join("c" * len(bits) for _ in tasks)
    lines = [
        f"% {title}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        "Method & "
        + " & ".join(f"\\multicolumn{{{len(bits)}}}{{c}}{{{TASK_NAMES[t]}}}" for t in tasks)
        + " \\\\",
        " & " + " & ".join(str(b) for _ in tasks for b in bits) + " \\\\",
        "\\midrule",
    ]
    for m, row in table.iterrows():
        label = "Chance" if m == CHANCE else str(m).replace("_", "\\_")
        lines.append(
            label
            + " & "
            + " & ".join(_cell(row[c], best.get(c) == m, True, seeds) for c in table.columns)
            + " \\\\"
        )
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, title: str) -> str:
    best, seeds = _best(table), table_seeds(table)
    head = "".join(f"<th>{TASK_NAMES[t]} {b}</th>" for t, b in table.columns)
    rows = []
    for m, row in table.iterrows():
        label = "chance (random codes)" if m == CHANCE else m
        cells = "".join(
            f"<td>{'<b>' if best.get(c) == m else ''}{_cell(row[c], False, False, seeds)}"
            f"{'</b>' if best.get(c) == m else ''}</td>"
            for c in table.columns
        )
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    return (
        f"<h3>{title}</h3>\n<table border='1' cellpadding='4' style='border-collapse:"
        f"collapse'>\n<tr><th>Method</th>{head}</tr>\n" + "\n".join(rows) + "\n</table>\n"
    )


def _key(name: str) -> str:
    """Method names as compared with papers' spellings: ``VTM-UCH`` == ``vtmuch``."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def beside_published(
    ours: pd.DataFrame, published: pd.DataFrame, dataset: str, published_as: str, metric: str
) -> list[tuple[str, pd.DataFrame]]:
    """Our table for ``dataset`` next to each published source's rows for ``published_as``.

    One (title, table) per source, since sources differ in features and protocol. Rows: our
    methods (``ours``, mean ± std) then the source's methods (single values); a published
    method we also run is put right after ours. Columns: the union of both sides' bits.
    """
    mine = comparison(ours, metric).get((dataset, ""))
    pub = published[(published["dataset"] == published_as) & (published["metric"] == metric)]
    out = []
    for source, rows in pub.groupby("source", sort=False):
        bits = sorted(
            {int(b) for b in rows["bits"]}
            | ({b for _, b in mine.columns} if mine is not None else set())
        )
        cols = [(t, b) for t in TASK_NAMES for b in bits]
        ours_rows = [m for m in (mine.index if mine is not None else []) if m != CHANCE]
        theirs = list(dict.fromkeys(rows["method"]))
        order = []
        for m in ours_rows:
            order.append(f"{m} (ours)")
            order += [f"{p} (published)" for p in theirs if _key(p) == _key(m)]
        order += [f"{p} (published)" for p in theirs if f"{p} (published)" not in order]
        table = pd.DataFrame(index=order, columns=pd.MultiIndex.from_tuples(cols), dtype=object)
        for m in ours_rows:
            for c in cols:
                if c in mine.columns and isinstance(mine.loc[m, c], tuple):
                    table.loc[f"{m} (ours)", c] = mine.loc[m, c]
        for r in rows.itertuples():
            if (r.task, int(r.bits)) in table.columns:
                table.loc[f"{r.method} (published)", (r.task, int(r.bits))] = (
                    float(r.value),
                    float("nan"),
                    0,
                )
        features = rows["features"].iloc[0]
        out.append(
            (
                f"{dataset} beside {source} ({published_as}; their features: {features}): {metric}",
                table,
            )
        )
    return out


def write_tables(
    metrics_tsv: str,
    metrics: Sequence[str],
    markdown_out: str,
    latex_out: str,
    html_out: str,
    methods: Sequence[str] | None = None,
    published_tsv: str | None = None,
    published_as: Mapping[str, str] | None = None,
) -> None:
    df = read_tsv(metrics_tsv)
    md, tex, html = ["# Results\n"], [], ["<html><body><h2>Results</h2>"]
    for metric in metrics:
        for (dataset, variant), table in comparison(df, metric, methods).items():
            title = f"{dataset}{' / ' + variant if variant else ''}: {metric}, " + _spread(table)
            md.append(to_markdown(table, title))
            tex.append(to_latex(table, title))
            html.append(to_html(table, title))
    if published_tsv and published_as:
        pub = pd.read_csv(published_tsv, sep="\t", dtype={"dataset": str})
        md.append(
            "## Beside published numbers\n\nPublished rows come from "
            f"`{published_tsv}`; they used other features and often other splits, "
            "so compare trends, not third decimals.\n"
        )
        html.append("<h2>Beside published numbers</h2>")
        for dataset, name in published_as.items():
            for metric in metrics:
                for title, table in beside_published(df, pub, dataset, name, metric):
                    md.append(to_markdown(table, title))
                    tex.append(to_latex(table, title))
                    html.append(to_html(table, title))
    html.append("</body></html>")
    for text, out in (
        ("\n".join(md), markdown_out),
        ("\n".join(tex), latex_out),
        ("\n".join(html), html_out),
    ):
        with atomic_path(out) as tmp:
            tmp.write_text(text)
