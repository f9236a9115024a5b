"""noise: corrupt the training labels of one split (the noisy-label track)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.data.noise import run_noise  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
run_noise(
    features=sm.input.features,
    split=sm.input.split,
    out=sm.output[0],
    kind=sm.params.kind,
    rate=sm.params.rate,
    seed=int(sm.wildcards.seed),
)
wrote(snakemake.output)
