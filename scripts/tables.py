"""tables: comparison tables (Markdown, LaTeX, HTML) from metrics.tsv, flagged runs marked
from warnings.tsv, and the report's graph-statistics table."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.runs import write_graph_stats  # noqa: E402
from xmhash.report.tables import write_tables  # noqa: E402

sm = snakemake  # noqa: F821
write_tables(
    sm.input.metrics,
    sm.params.metrics,
    sm.output.markdown,
    sm.output.latex,
    sm.output.html,
    methods=sm.params.methods,
    published_tsv=sm.input.published[0] if sm.input.published else None,
    published_as=sm.params.published_as,
    warnings_tsv=sm.input.warnings,
)
write_graph_stats(sm.input.graph_stats, sm.output.graphs_markdown, sm.output.graphs_html)
wrote(sm.output)
