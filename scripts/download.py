"""download: fetch one dataset's official files (local archive, mirrors, official URLs)."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from xmhash.data.stage import download_dataset  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
download_dataset(
    sm.params.source,
    Path(sm.output[0]).parent,
    sm.config["datasets"][sm.wildcards.dataset],
    dataset=sm.wildcards.dataset,
)
wrote(snakemake.output)
