"""train: train one method x bits x seed on cached features."""

from _bootstrap import init, training_run_settings

init(snakemake)  # noqa: F821

from xmhash.log import wrote  # noqa: E402
from xmhash.train import TrainSettings, run_training  # noqa: E402

sm = snakemake  # noqa: F821
run_training(
    features=sm.input.features,
    split=sm.input.split,
    method=sm.wildcards.method,
    params=sm.params.hp,
    bits=int(sm.wildcards.bits),
    seed=int(sm.wildcards.seed),
    settings=TrainSettings(**{**training_run_settings(sm), **sm.params.settings}),
    model_out=sm.output.model,
    summary_out=sm.output.summary,
    history_out=sm.output.history,
    threads=sm.threads,
    # the noisy-label track (workflow/rules/noise.smk): noisy labels in, sample weights out
    train_labels=sm.input.get("labels"),
    sample_weights_out=sm.output.get("weights"),
    graph={k.removeprefix("graph_"): v for k, v in sm.input.items() if k.startswith("graph_")},
    max_dense=sm.config.get("graph", {}).get("max_dense"),
)
wrote(snakemake.output)
