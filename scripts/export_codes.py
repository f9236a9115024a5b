"""export_codes: encode the query and database items with a trained model."""

from _bootstrap import device, init

init(snakemake)  # noqa: F821

from xmhash.export import export_run  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
export_run(
    model=sm.input.model,
    features=sm.input.features,
    split=sm.input.split,
    codes_out=sm.output.codes,
    device=device(sm),
    threads=sm.threads,
    attrs={"dataset": sm.wildcards.dataset},
)
wrote(snakemake.output)
