"""graph: build one similarity graph and its Leiden communities on a split's training rows."""

from _bootstrap import device, init

init(snakemake)  # noqa: F821

from xmhash.graph.stage import build_graph  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
build_graph(
    features=sm.input.features,
    split=sm.input.split,
    kind=sm.wildcards.kind,
    spec=sm.params.spec,
    seed=int(sm.wildcards.seed),
    out=sm.output.graph,
    stats_out=sm.output.stats,
    threads=sm.threads,
    device=device(sm),
    **sm.params.settings,
)
wrote(snakemake.output)
