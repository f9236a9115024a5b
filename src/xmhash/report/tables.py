"""Comparison tables as the papers lay them out: one row per method, columns per task x bits.

Cells are the mean over seeds, ± the sample standard deviation when there are at least
two seeds, both to three decimals in every table (:func:`format_std`). The title states
the number of seeds; a cell with fewer seeds than the rest of its table says so
(``(n=1)``). The best mean of each column is bold. The last row is the chance level on
the same split: the expected mAP@all of a random ranking, the expected precision of a
random ranking for P@N, random codes for the other mAP variants.

Methods are shown by their display names (:mod:`xmhash.report.names`, the one place that
spells them), metrics by :func:`metric_label`. A cell one of whose runs the evaluation
flagged (``warnings`` of its ``metrics.json``: collapsed codes, a task at chance, a
mechanism that switched itself off) carries a letter, and the note under the table
names the run and the warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd

from xmhash.io import atomic_path
from xmhash.report.names import display_name

TASK_NAMES = {"i2t": "I→T", "t2i": "T→I"}
CHANCE = "chance"


def metric_label(metric: str) -> str:
    """``map@all_tie_aware`` -> ``mAP@all (tie-aware)``, ``map@50_djsrh`` -> ``mAP@50
    (DJSRH's definition)``, ``p@100`` -> ``P@100``."""
    name, _, variant = metric.partition("_")
    name = name.replace("map@", "mAP@").replace("p@", "P@")
    suffix = {
        "": "",
        "tie_aware": " (tie-aware)",
        "djsrh": " (DJSRH's definition)",
        "dcmh": " (DCMH's definition)",
    }.get(variant, f" ({variant})")
    return name + suffix


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
    """Three decimals, as the means: 0.044, 0.004, <0.001 (never a spread of 0.000)."""
    return "<0.001" if std < 0.0005 else f"{std:.3f}"


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


# {(method, task, bits): [note, ...]}: the warnings of the runs behind each cell
Notes = Mapping[tuple[str, str, int], Sequence[str]]


def read_warnings(path: str | None) -> pd.DataFrame:
    """``warnings.tsv`` (one row per run and warning), or an empty frame without one."""
    cols = ["dataset", "variant", "method", "bits", "seed", "warning"]
    if not path:
        return pd.DataFrame(columns=cols)
    return pd.read_csv(
        path, sep="\t", keep_default_na=False, dtype={"variant": str, "dataset": str}
    )


def run_notes(warnings: pd.DataFrame, dataset: str, variant: str) -> dict:
    """The notes of one table's cells: a warning that names a task (``i2t ...``) marks
    that task's cell, any other both tasks' cells of its method and code length."""
    notes: dict = {}
    sel = warnings[(warnings["dataset"] == dataset) & (warnings["variant"] == variant)]
    for r in sel.itertuples(index=False):
        task = str(r.warning).split(" ", 1)[0]
        tasks = [task] if task in TASK_NAMES else list(TASK_NAMES)
        text = f"{display_name(r.method)}, {int(r.bits)} bits, seed {int(r.seed)}: {r.warning}"
        for t in tasks:
            notes.setdefault((r.method, t, int(r.bits)), []).append(text)
    return notes


def _letters(table: pd.DataFrame, notes: Notes | None) -> tuple[dict, list[tuple[str, str]]]:
    """({(row, column): letters}, [(letter, note)]) for the flagged cells of ``table``."""
    marks, order = {}, {}
    for m in table.index:
        for t, b in table.columns:
            for text in (notes or {}).get((m, t, int(b)), ()):
                order.setdefault(text, _letter(len(order)))
                marks[(m, (t, b))] = marks.get((m, (t, b)), "") + order[text]
    return marks, [(letter, text) for text, letter in order.items()]


def _letter(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i % 26] * (i // 26 + 1)


def _label(m) -> str:
    return "chance" if m == CHANCE else display_name(str(m))


def to_markdown(table: pd.DataFrame, title: str, notes: Notes | None = None) -> str:
    best, seeds = _best(table), table_seeds(table)
    marks, footnotes = _letters(table, notes)
    head = "| Method | " + " | ".join(f"{TASK_NAMES[t]} {b}" for t, b in table.columns) + " |"
    sep = "|---|" + "---|" * len(table.columns)
    lines = [f"### {title}", "", head, sep]
    for m, row in table.iterrows():
        cells = []
        for c in table.columns:
            text = _cell(row[c], best.get(c) == m, False, seeds)
            cells.append(text + (f" [{marks[(m, c)]}]" if (m, c) in marks else ""))
        lines.append(f"| {_label(m)} | " + " | ".join(cells) + " |")
    if footnotes:
        lines += ["", "Flagged runs:", ""] + [f"- [{a}] {text}" for a, text in footnotes]
    return "\n".join(lines) + "\n"


def _latex_text(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&")):
        text = text.replace(a, b)
    return text.replace("#", "\\#").replace("→", "$\\to$")


def to_latex(table: pd.DataFrame, title: str, notes: Notes | None = None) -> str:
    best, seeds = _best(table), table_seeds(table)
    marks, footnotes = _letters(table, notes)
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
        cells = [
            _cell(row[c], best.get(c) == m, True, seeds)
            + (f"$^{{{marks[(m, c)]}}}$" if (m, c) in marks else "")
            for c in table.columns
        ]
        lines.append(_latex_text(_label(m)) + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if footnotes:
        lines += [
            "\\par\\footnotesize "
            + "; ".join(f"$^{{{a}}}$ {_latex_text(text)}" for a, text in footnotes)
        ]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, title: str, notes: Notes | None = None) -> str:
    best, seeds = _best(table), table_seeds(table)
    marks, footnotes = _letters(table, notes)
    head = "".join(f"<th>{TASK_NAMES[t]} {b}</th>" for t, b in table.columns)
    rows = []
    for m, row in table.iterrows():
        cells = ""
        for c in table.columns:
            text = escape(_cell(row[c], False, False, seeds))
            if best.get(c) == m:
                text = f"<b>{text}</b>"
            if (m, c) in marks:
                text += f"<sup class='flag'>{marks[(m, c)]}</sup>"
            style = " style='background:#fff3cd'" if (m, c) in marks else ""
            cells += f"<td{style}>{text}</td>"
        rows.append(f"<tr><td>{escape(_label(m))}</td>{cells}</tr>")
    foot = "".join(f"<li><sup>{a}</sup> {escape(text)}</li>" for a, text in footnotes)
    return (
        f"<h3>{escape(title)}</h3>\n<table border='1' cellpadding='4' style='border-collapse:"
        f"collapse'>\n<tr><th>Method</th>{head}</tr>\n"
        + "\n".join(rows)
        + "\n</table>\n"
        + (f"<p>Flagged runs:</p><ul class='flags'>{foot}</ul>\n" if foot else "")
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
            order.append(f"{display_name(m)} (ours)")
            order += [f"{p} (published)" for p in theirs if _key(p) == _key(display_name(m))]
        order += [f"{p} (published)" for p in theirs if f"{p} (published)" not in order]
        table = pd.DataFrame(index=order, columns=pd.MultiIndex.from_tuples(cols), dtype=object)
        for m in ours_rows:
            for c in cols:
                if c in mine.columns and isinstance(mine.loc[m, c], tuple):
                    table.loc[f"{display_name(m)} (ours)", c] = mine.loc[m, c]
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
                f"{dataset} beside {source} ({published_as}; their features: {features}): "
                + metric_label(metric),
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
    warnings_tsv: str | None = None,
) -> None:
    """One table per metric and (dataset, variant), then our tables beside published
    ones; the cells of runs in ``warnings_tsv`` are marked and their warnings listed."""
    df, flags = read_tsv(metrics_tsv), read_warnings(warnings_tsv)
    md, tex, html = ["# Results\n"], [], ["<html><body><h2>Results</h2>"]
    for metric in metrics:
        for (dataset, variant), table in comparison(df, metric, methods).items():
            title = (
                f"{dataset}{' / ' + variant if variant else ''}: {metric_label(metric)}, "
                + _spread(table)
            )
            notes = run_notes(flags, dataset, variant)
            md.append(to_markdown(table, title, notes))
            tex.append(to_latex(table, title, notes))
            html.append(to_html(table, title, notes))
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
