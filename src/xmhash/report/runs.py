"""What the runs cost and what the graph stage built, as report tables.

* Runtime and memory per rule, from Snakemake's ``benchmark:`` files (one TSV per job:
  wall seconds ``s``, peak resident memory ``max_rss`` in MB, ``cpu_time`` in seconds).
  Jobs of the training grid are broken down by method.
* Graph statistics, from the graph stage's ``seed{seed}.json`` files: nodes, edges,
  communities, modularity and the diagnostic NMI against the dominant label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from xmhash.io import atomic_path, read_json

_RUN = re.compile(r"/(?:noise(?P<noise>[^/]+)/)?(?P<method>[^/]+)/\d+bits/seed\d+/")


def read_benchmarks(files: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """{rule: benchmark files} -> one row per job: rule, method ('' outside the training
    grid, ``method (noise X)`` on the noisy track), wall, cpu and max_rss."""
    rows = []
    for rule, paths in files.items():
        for p in paths:
            bench = pd.read_csv(p, sep="\t")
            m = _RUN.search(Path(p).as_posix())
            method = "" if m is None else m["method"]
            if m is not None and m["noise"]:
                method += f" (noise {m['noise']})"
            for r in bench.itertuples(index=False):
                rows.append(
                    {
                        "rule": rule,
                        "method": method,
                        "wall": float(r.s),
                        "cpu": pd.to_numeric(getattr(r, "cpu_time", None), errors="coerce"),
                        "max_rss": pd.to_numeric(r.max_rss, errors="coerce"),
                    }
                )
    return pd.DataFrame(rows, columns=["rule", "method", "wall", "cpu", "max_rss"])


def runtime_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Per rule (and method): jobs, median and max wall seconds, total wall and CPU minutes,
    peak resident memory in MB; the total over all jobs last."""
    g = bench.groupby(["rule", "method"], sort=False)
    table = pd.DataFrame(
        {
            "jobs": g.size(),
            "median s": g["wall"].median(),
            "max s": g["wall"].max(),
            "total min": g["wall"].sum() / 60,
            "CPU min": g["cpu"].sum() / 60,
            "peak RSS MB": g["max_rss"].max(),
        }
    ).reset_index()
    total = {
        "rule": "total",
        "method": "",
        "jobs": len(bench),
        "median s": float("nan"),  # of jobs of different rules: meaningless
        "max s": bench["wall"].max(),
        "total min": bench["wall"].sum() / 60,
        "CPU min": bench["cpu"].sum() / 60,
        "peak RSS MB": bench["max_rss"].max(),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def graph_table(paths: Sequence[str]) -> pd.DataFrame:
    """One row per graph file ``results/{dataset}/graph/{encoder}/{kind}/seed{seed}.json``."""
    rows = []
    for p in paths:
        s = read_json(p)
        parts = Path(p).parts
        rows.append(
            {
                "dataset": parts[-5],
                "encoder": parts[-3],
                "kind": s.get("kind", parts[-2]),
                "seed": int(Path(p).stem.removeprefix("seed")),
                "nodes": s.get("nodes"),
                "edges": s.get("edges"),
                "communities": s.get("communities"),
                "largest": s.get("largest"),
                "singletons": s.get("singletons"),
                "median size": s.get("median_size"),
                "modularity": s.get("modularity"),
                "NMI (diagnostic)": s.get("diagnostic_nmi"),
                "seconds": (s.get("seconds") or {}).get("total"),
            }
        )
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    lines = [f"### {title}", ""] + ([note, ""] if note else [])
    if df.empty:
        return "\n".join(lines)
    lines += ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_html(df: pd.DataFrame, title: str, note: str = "") -> str:
    if df.empty:
        return f"<h3>{title}</h3>\n" + (f"<p>{note}</p>\n" if note else "")
    head = "".join(f"<th>{c}</th>" for c in df.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return (
        f"<h3>{title}</h3>\n" + (f"<p>{note}</p>\n" if note else "") + "<table border='1' "
        f"cellpadding='4' style='border-collapse:collapse'>\n<tr>{head}</tr>\n{body}\n</table>\n"
    )


def _write(sections: Sequence[tuple[str, pd.DataFrame, str]], md_out: str, html_out: str) -> None:
    md = "\n".join(to_markdown(df, title, note) for title, df, note in sections)
    html = (
        "<html><body>\n"
        + "".join(to_html(df, title, note) for title, df, note in sections)
        + "</body></html>\n"
    )
    for text, out in ((md, md_out), (html, html_out)):
        with atomic_path(out) as tmp:
            tmp.write_text(text)


def write_runtime(files: Mapping[str, Sequence[str]], md_out: str, html_out: str) -> None:
    note = (
        "From Snakemake's benchmark files: wall-clock seconds per job (median and max), "
        "summed wall and CPU minutes, and the peak resident memory of one job."
    )
    _write(
        [("Runtime and memory per rule", runtime_table(read_benchmarks(files)), note)],
        md_out,
        html_out,
    )


def write_graph_stats(paths: Sequence[str], md_out: str, html_out: str) -> None:
    note = (
        "Built on the training items of each split seed. The NMI against the dominant true "
        "label is a diagnostic only: no method trains on labels through the graph."
    )
    table = graph_table(paths)
    if not len(table):
        note = "No method of this grid trains on a graph."
    _write([("Similarity graphs and Leiden communities", table, note)], md_out, html_out)
