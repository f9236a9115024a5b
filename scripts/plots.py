"""plots: mAP vs bits, PR and P@N curves of one dataset."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.report.plots import curves, map_vs_bits  # noqa: E402

sm = snakemake  # noqa: F821
ds, methods = sm.wildcards.dataset, sm.params.methods
map_vs_bits(sm.input.metrics, ds, sm.output.map_vs_bits, methods=methods)
curves(sm.input.curves, ds, sm.output.pr, kind="pr", methods=methods)
curves(sm.input.curves, ds, sm.output.pn, kind="pn", methods=methods)
