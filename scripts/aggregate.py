"""aggregate: every run's metrics.json -> results/summary/{metrics,curves,warnings}.tsv."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.aggregate import aggregate  # noqa: E402

sm = snakemake  # noqa: F821
aggregate(sm.input, sm.output.metrics, sm.output.curves, sm.output.warnings)
wrote(sm.output)
