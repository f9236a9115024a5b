"""DJSRH, JDSH and DGCPN run through the whole workflow (tiny epochs on the smoke demo)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.workflow

METHODS = ["djsrh", "jdsh", "dgcpn"]
OVERLAY = {
    "run": {"methods": METHODS, "bits": [16], "seeds": [0]},
    "methods": {m: {"epochs": 2, "hidden": 64} for m in METHODS},
}


def test_the_three_methods_run_through_the_workflow(tmp_path):
    wf = copy_workflow(tmp_path)
    # a --configfile overlay: --config on the command line would make the bits strings
    (wf / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY))
    snakemake(wf, "--cores", "2", "--configfile", "tests/config/smoke.yaml", "overlay.yaml")
    df = pd.read_csv(wf / "results/summary/metrics.tsv", sep="\t")
    assert set(METHODS) <= set(df["method"])
    terms = {"djsrh": "intra_image", "jdsh": "pair_cos", "dgcpn": "loss_image_step"}
    for m in METHODS:
        run = wf / f"results/demo/{m}/16bits/seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 < metrics["tasks"]["i2t"]["map@all"] <= 1
        history = pd.read_csv(run / "train_log.csv")
        assert list(history["epoch"]) == [1, 2] and terms[m] in history.columns
