"""prepare: turn one dataset's official files into the prepared layout."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from xmhash.data.stage import prepare_dataset  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
prepare_dataset(sm.params.source, Path(sm.input.downloads).parent, sm.output[0], sm.params.options)
wrote(snakemake.output)
