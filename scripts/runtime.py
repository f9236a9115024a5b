"""runtime: the runtime and memory table of every job, from Snakemake's benchmark files."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.report.runs import write_runtime  # noqa: E402

sm = snakemake  # noqa: F821
files = {rule: [p] if isinstance(p, str) else list(p) for rule, p in sm.input.items()}
write_runtime(files, sm.output.markdown, sm.output.html)
wrote(sm.output)
