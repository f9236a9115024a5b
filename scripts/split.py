"""split: draw the query/database/train/val split of one dataset and seed."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.data.splits import split_features  # noqa: E402
from xmhash.log import wrote  # noqa: E402

split_features(
    snakemake.input.features,
    snakemake.output[0],  # noqa: F821
    seed=int(snakemake.wildcards.seed),
    **snakemake.params.split,
)  # noqa: F821
wrote(snakemake.output)
