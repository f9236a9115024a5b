"""plots: mAP vs bits, PR and P@N curves at every code length, training curves and the
qualitative retrieval figure of one dataset (PNG + PDF)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.examples import retrieval_examples  # noqa: E402
from xmhash.report.plots import curves, map_vs_bits, training_curves  # noqa: E402

sm = snakemake  # noqa: F821
ds, methods, out = sm.wildcards.dataset, sm.params.methods, sm.output
maps = [out.map_vs_bits, out.map_vs_bits_pdf, out.map_vs_bits_svg]
map_vs_bits(sm.input.metrics, ds, maps, methods=methods)
for kind in ("pr", "pn"):
    paths = [out[kind], out[f"{kind}_pdf"]]
    curves(sm.input.curves, sm.input.metrics, ds, paths, kind=kind, methods=methods)
training_curves(sm.input.history, ds, [out.training, out.training_pdf], methods=methods)
retrieval_examples(
    sm.input.example_codes,
    sm.input.features,
    [out.retrieval, out.retrieval_pdf],
    prepared=sm.input.prepared[0] if sm.input.prepared else None,
    database=sm.params.database,
    tie_seed=sm.params.tie_seed,
)
wrote(sm.output)
