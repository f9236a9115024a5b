"""plots: mAP vs bits, PR and P@N curves at every code length, training curves and the
qualitative retrieval figure of one dataset (PNG + PDF)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.examples import retrieval_examples  # noqa: E402
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
retrieval_examples(
    sm.input.example_codes,
    sm.input.features,
    [sm.output.retrieval, sm.output.retrieval_pdf],
    prepared=sm.input.prepared[0] if sm.input.prepared else None,
    database=sm.params.database,
    tie_seed=sm.params.tie_seed,
)
wrote(sm.output)
