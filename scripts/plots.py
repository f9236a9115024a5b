"""plots: mAP vs bits, PR and P@N curves and training curves of one dataset (PNG + PDF)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.plots import dataset_plots  # noqa: E402

sm = snakemake  # noqa: F821
dataset_plots(
    sm.input.metrics,
    sm.input.curves,
    sm.input.history,
    sm.wildcards.dataset,
    sm.output,
    methods=sm.params.methods,
)
wrote(sm.output)
