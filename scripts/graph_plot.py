"""graph_plot: the community-size plot of one graph, for the report."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.graph.plot import community_size_plot  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
community_size_plot(sm.input[0], sm.output[0])
wrote(snakemake.output)
