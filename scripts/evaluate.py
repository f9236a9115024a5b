"""evaluate: mAP, P@N and PR of one run's codes."""

from _bootstrap import init

init(snakemake)  # noqa: F821

from xmhash.evaluate import evaluate_run  # noqa: E402
from xmhash.log import wrote  # noqa: E402

sm = snakemake  # noqa: F821
ev = sm.params.evaluation
evaluate_run(
    codes=sm.input.codes,
    features=sm.input.features,
    out=sm.output[0],
    ks=ev["k"],
    pn=ev["pn"],
    tie_seed=ev["tie_seed"],
    train_summary=sm.input.summary,
    database=sm.params.database,
    meta={
        "dataset": sm.wildcards.dataset,
        # the noisy-label track names itself in the tables' variant column
        "variant": f"noise-{sm.wildcards.noise}" if "noise" in sm.wildcards.keys() else "",
    },
)
wrote(snakemake.output)
