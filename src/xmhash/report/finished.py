"""The summary of a run that did not finish: the summary of the runs that did, the rest named.

The workflow calls :func:`summarise_finished` when it stops on an error (Snakemake's
``onerror``, e.g. after ``--keep-going`` with one broken method): the regular summary
rules need every run's ``metrics.json`` and would not run, leaving an older summary in
place. This rewrites the whole summary directory, as the summary rules lay it out
(``workflow/rules/evaluate.smk``, ``noise.smk``), from the runs whose files all exist:
tables, plots, runtime and graph tables, the noise table and weight histograms. Nothing of
an older summary is left beside it, and the tables list the runs that are missing.

A run counts as finished when every file of its directory exists: Snakemake removes the
outputs of a job that fails, so a run whose training failed this time has no
``model.pt``, even where an older ``metrics.json`` of it is still there.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xmhash.report.aggregate import aggregate
from xmhash.report.tables import write_tables

log = logging.getLogger(__name__)


def summarise_finished(
    runs: Mapping[str, Sequence[str]],
    *,
    summary: str | Path,
    tables: Mapping[str, Any],
    datasets: Sequence[str],
    methods: Sequence[str],
    benchmarks: Mapping[str, Sequence[str]],
    graph_stats: Sequence[str],
) -> list[str]:
    """Rewrite the ``summary`` directory from the finished ones of ``runs`` ({run
    directory: its files}) and return the others, which the Markdown and HTML tables name.

    ``tables``: :func:`~xmhash.report.tables.write_tables`' options (``metrics``,
    ``methods``, ``published_tsv``, ``published_as``); ``methods``: the clean grid's, for
    the plots; ``benchmarks``: {rule: benchmark files} of the runtime table (a run's are
    used only when the run finished); ``graph_stats``: the graph stage's statistics files.
    When no run finished, the tables hold only that list."""
    done = [run for run, files in runs.items() if all(Path(f).is_file() for f in files)]
    missing = [run for run in runs if run not in done]
    out = Path(summary)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    metrics, curves = str(out / "metrics.tsv"), str(out / "curves.tsv")
    md, html = out / "tables.md", out / "tables.html"
    if done:
        flags = str(out / "warnings.tsv")
        aggregate([f"{run}/metrics.json" for run in done], metrics, curves, flags)
        tex = str(out / "tables.tex")
        write_tables(
            metrics,
            markdown_out=str(md),
            latex_out=tex,
            html_out=str(html),
            warnings_tsv=flags,
            **tables,
        )
        _part("plots", _plots, out, done, datasets, methods)
        _part("noisy-label summary", _noise, out, done, datasets, tables.get("methods"))
        _part("runtime table", _runtime, out, done, runs, benchmarks)
    else:
        md.write_text("# Results\n")
        html.write_text("<html><body><h2>Results</h2></body></html>")
    _part("graph table", _graphs, out, graph_stats)
    if missing:
        _name_missing(md, html, missing, len(runs))
        log.warning(
            "summary written from %d finished runs; %d did not finish: %s",
            len(done),
            len(missing),
            ", ".join(missing),
        )
    return missing


def _part(what: str, write: Callable[..., None], *args: Any) -> None:
    """Write one part of the summary; one that fails is left out with a warning (this runs
    while the workflow stops on an error, and must not hide it)."""
    try:
        write(*args)
    except Exception as e:  # noqa: BLE001 - any failure leaves only this part out
        log.warning("summary: %s left out: %s: %s", what, type(e).__name__, e)


def _dataset(run: str) -> str:
    return Path(run).parts[1]  # results/{dataset}/...


def _noisy(run: str) -> bool:
    return Path(run).parts[2].startswith("noise")  # results/{dataset}/noise{tag}/...


def _plots(out: Path, done: Sequence[str], datasets: Sequence[str], methods) -> None:
    from xmhash.report.plots import DATASET_PLOTS, dataset_plots

    for ds in datasets:
        clean = [run for run in done if _dataset(run) == ds and not _noisy(run)]
        if not clean:
            continue
        base = out / "plots" / ds
        base.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in DATASET_PLOTS:
            files[name], files[f"{name}_pdf"] = str(base / f"{name}.png"), str(base / f"{name}.pdf")
        histories = [f"{run}/train_log.csv" for run in clean]
        dataset_plots(
            str(out / "metrics.tsv"), str(out / "curves.tsv"), histories, ds, files, methods
        )


def _noise(out: Path, done: Sequence[str], datasets: Sequence[str], methods) -> None:
    from xmhash.report.noise import noise_table, weights_histogram

    noisy = [run for run in done if _noisy(run)]
    if not noisy:
        return
    noise_table(str(out / "metrics.tsv"), str(out / "noise_table.md"), methods=methods)
    for ds in datasets:
        weights = [f"{run}/sample_weights.npz" for run in noisy if _dataset(run) == ds]
        if weights:
            (out / "plots" / ds).mkdir(parents=True, exist_ok=True)
            weights_histogram(weights, str(out / "plots" / ds / "noise_weights.png"), title=ds)


def _runtime(out: Path, done, runs: Mapping[str, Sequence[str]], benchmarks) -> None:
    from xmhash.report.runs import write_runtime

    def counts(bench: str) -> bool:  # a run's benchmark file mirrors its path
        run = str(Path(bench.replace("results/benchmarks/", "results/", 1)).parent)
        return Path(bench).is_file() and (run not in runs or run in done)

    files = {rule: [b for b in paths if counts(b)] for rule, paths in benchmarks.items()}
    files = {rule: paths for rule, paths in files.items() if paths}
    write_runtime(files, str(out / "runtime.md"), str(out / "runtime.html"))


def _graphs(out: Path, graph_stats: Sequence[str]) -> None:
    from xmhash.report.runs import write_graph_stats

    stats = [p for p in graph_stats if Path(p).is_file()]
    write_graph_stats(stats, str(out / "graphs.md"), str(out / "graphs.html"))


def _name_missing(md: Path, html: Path, missing: Sequence[str], total: int) -> None:
    note = (
        f"{len(missing)} of {total} runs did not finish (see their logs/ and rerun); they "
        "are not in the tables above:"
    )
    md.write_text(
        md.read_text()
        + "\n## Runs that did not finish\n\n"
        + note
        + "\n\n"
        + "".join(f"- `{run}`\n" for run in missing)
    )
    items = "".join(f"<li><code>{run}</code></li>" for run in missing)
    html.write_text(
        html.read_text().replace(
            "</body></html>",
            f"<h2>Runs that did not finish</h2><p>{note}</p><ul>{items}</ul></body></html>",
        )
    )
