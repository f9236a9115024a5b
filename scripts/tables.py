"""tables: comparison tables (Markdown, LaTeX, HTML) from metrics.tsv, and the report's
runtime (benchmark files) and graph-statistics tables."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.runs import write_graph_stats, write_runtime  # noqa: E402
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
)
benchmarks = {k.removeprefix("bench_"): v for k, v in sm.input.items() if k.startswith("bench_")}
write_runtime(benchmarks, sm.output.runtime_markdown, sm.output.runtime_html)
write_graph_stats(sm.input.graph_stats, sm.output.graphs_markdown, sm.output.graphs_html)
wrote(sm.output)
