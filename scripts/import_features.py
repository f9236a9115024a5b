"""import_features: write the features that ship with a dataset to a feature file."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from pathlib import Path  # noqa: E402

from xmhash.data.stage import import_features  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
import_features(sm.params.source, Path(sm.input.downloads).parent, sm.output[0], sm.params.options)
wrote(snakemake.output)
