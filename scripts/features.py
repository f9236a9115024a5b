"""features: embed a prepared dataset with one encoder into its feature file."""

from _bootstrap import init

init(snakemake)

from xmhash.features.extract import run_features  # noqa: E402
from xmhash.log import wrote  # noqa: E402

run_features(
    prepared=snakemake.input.prepared,
    out=snakemake.output[0],
    encoder=snakemake.wildcards.encoder,
    settings=snakemake.params.settings,
    config=snakemake.config,
    dataset=snakemake.wildcards.dataset,
    threads=snakemake.threads,
)
wrote(snakemake.output)
