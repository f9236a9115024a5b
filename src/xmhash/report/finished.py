"""The summary of a run that did not finish: tables from the runs that did, the rest named.

The workflow calls :func:`summarise_finished` when it stops on an error (Snakemake's
``onerror``, e.g. after ``--keep-going`` with one broken method): the regular summary
rules need every run's ``metrics.json`` and would not run, leaving an old ``tables.md``
in place. This writes the summary files the rules would have written, from the
``metrics.json`` files that exist, and lists the runs that are missing in the tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xmhash.report.aggregate import aggregate
from xmhash.report.tables import write_tables

log = logging.getLogger(__name__)


def summarise_finished(
    runs: Sequence[str | os.PathLike],
    *,
    metrics_out: str,
    curves_out: str,
    markdown_out: str,
    latex_out: str,
    html_out: str,
    tables: Mapping[str, Any],
) -> list[str]:
    """Summarise the runs (``metrics.json`` paths) that exist; return the missing runs'
    directories, which the Markdown and HTML tables name. When no run finished, the
    tables hold only that list and the older summary files are removed."""
    done = [str(p) for p in runs if Path(p).is_file()]
    missing = [str(Path(p).parent) for p in runs if not Path(p).is_file()]
    if done:
        aggregate(done, metrics_out, curves_out)
        write_tables(
            metrics_out, markdown_out=markdown_out, latex_out=latex_out, html_out=html_out, **tables
        )
    else:  # no table at all, and no stale one of an older run
        for out in (metrics_out, curves_out, latex_out):
            Path(out).unlink(missing_ok=True)
        Path(markdown_out).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_out).write_text("# Results\n")
        Path(html_out).write_text("<html><body><h2>Results</h2></body></html>")
    if missing:
        note = (
            f"{len(missing)} of {len(runs)} runs did not finish (see their logs/ and "
            "rerun); they are not in the tables above:"
        )
        md = Path(markdown_out)
        md.write_text(
            md.read_text()
            + "\n## Runs that did not finish\n\n"
            + note
            + "\n\n"
            + "".join(f"- `{run}`\n" for run in missing)
        )
        html = Path(html_out)
        items = "".join(f"<li><code>{run}</code></li>" for run in missing)
        html.write_text(
            html.read_text().replace(
                "</body></html>",
                f"<h2>Runs that did not finish</h2><p>{note}</p><ul>{items}</ul></body></html>",
            )
        )
        log.warning(
            "summary written from %d finished runs; %d did not finish: %s",
            len(done),
            len(missing),
            ", ".join(missing),
        )
    return missing
