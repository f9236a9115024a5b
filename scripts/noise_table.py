"""noise_table: the noisy-label track's table (noise rate x bits x method)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.noise import noise_table  # noqa: E402

sm = snakemake  # noqa: F821
noise_table(sm.input[0], sm.output[0], methods=sm.params.methods)
wrote(snakemake.output)
