"""noise_weights_plot: histograms of the per-sample weights of flipped vs clean items."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.noise import weights_histogram  # noqa: E402

sm = snakemake  # noqa: F821
weights_histogram(list(sm.input), sm.output[0], title=sm.wildcards.dataset)
wrote(snakemake.output)
