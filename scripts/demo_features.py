"""demo_features: generate the synthetic demo dataset as a feature file."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.data.demo_variants import generate  # noqa: E402
from xmhash.features.store import write_features  # noqa: E402
from xmhash.log import wrote  # noqa: E402

feats = generate(snakemake.params.spec)  # noqa: F821
feats.attrs["dataset"] = snakemake.wildcards.dataset  # noqa: F821
write_features(snakemake.output[0], feats)  # noqa: F821
wrote(snakemake.output)
