"""Shared start of every script adapter.

Snakemake puts this directory on ``sys.path`` before it runs a ``script:``, so the
adapters can ``from _bootstrap import init``. :func:`init` makes the ``xmhash`` package
importable from ``<repo>/src`` (so jobs work with or without ``pip install``, with
``--use-conda`` and on a cluster with a shared file system) and sends stderr (tracebacks,
progress bars) and logging to the rule's log file, and removes the temporaries that a
killed run of the same job left beside its outputs.
"""

import os
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def init(snakemake):
    # first, even if already listed further down (e.g. after an editable install of
    # another checkout): a job imports the xmhash of the workflow it belongs to
    if str(SRC) in sys.path:
        sys.path.remove(str(SRC))
    sys.path.insert(0, str(SRC))
    if snakemake.log:
        sys.stderr = open(snakemake.log[0], "a", buffering=1)  # noqa: SIM115
    os.environ.setdefault("PYTHONHASHSEED", "0")
    from xmhash.io import sweep_stale
    from xmhash.log import setup_logging

    setup_logging(None)
    for out in snakemake.output:  # what a killed run of this job left half-written
        sweep_stale(out)


def device(snakemake) -> str:
    """The configured device of a job. It is read from the config, not from params: where
    a job runs does not change what it writes, so a new device reruns nothing."""
    return str(snakemake.config["device"])


def training_run_settings(snakemake) -> dict:
    """Training settings that change how a job runs, not the model it writes (so they are
    not the rule's params): the device, the checkpoint interval and the threads; and
    val_every, which is in the params only when validation selects the model."""
    training = snakemake.config["training"]
    return {
        "device": device(snakemake),
        "checkpoint_minutes": training["checkpoint_minutes"],
        "threads": snakemake.threads,
        "val_every": training["val_every"],
    }
