"""aggregate: every run's metrics.json -> results/summary/{metrics,curves}.tsv."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.aggregate import aggregate  # noqa: E402

aggregate(snakemake.input, snakemake.output.metrics, snakemake.output.curves)  # noqa: F821
wrote(snakemake.output)
