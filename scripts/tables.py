"""tables: comparison tables (Markdown, LaTeX, HTML) from metrics.tsv."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.report.tables import write_tables  # noqa: E402

sm = snakemake  # noqa: F821
write_tables(sm.input[0], sm.params.metrics, sm.output.markdown, sm.output.latex,
             sm.output.html, methods=sm.params.methods)
