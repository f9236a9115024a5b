"""The noisy-label track through Snakemake: noise stage, noisy runs, variant rows, the
noise table and the weight histograms; clean runs keep their paths."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_workflow import SMOKE, copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

NOISE = "tests/config/noise.yaml"


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("noise_workflow"))
    snakemake(wf, "--cores", "2", "--configfile", SMOKE, NOISE)
    return wf


def test_noisy_track_outputs(wf):
    from xmhash.data.noise import read_noise, read_weights

    nl = read_noise(wf / "results/demo/noise/sym0.5/seed0.npz")
    assert nl.kind == "sym" and nl.realised_rate == pytest.approx(0.5, abs=0.005)
    run = wf / "results/demo/noisesym0.5/rshnl/16bits/seed0"
    for name in ("model.pt", "train.json", "codes.h5", "metrics.json", "sample_weights.npz"):
        assert (run / name).exists(), name
    w = read_weights(run / "sample_weights.npz")
    assert np.array_equal(w["rows"], nl.rows) and np.array_equal(w["flipped"], nl.flipped)
    assert w["kind"] != "uniform"
    ce = read_weights(wf / "results/demo/noisesym0.5/ce_centre/8bits/seed0/sample_weights.npz")
    assert ce["kind"] == "uniform" and np.all(ce["weights"] == 1)
    assert (wf / "results/demo/lsh/8bits/seed0/metrics.json").exists()  # clean paths unchanged
    assert (wf / "results/summary/plots/demo/noise_weights.png").stat().st_size > 0

    df = pd.read_csv(wf / "results/summary/metrics.tsv", sep="\t", keep_default_na=False)
    assert set(df.loc[df["method"] == "rshnl", "variant"]) == {"noise-sym0.5"}
    assert set(df.loc[df["method"] == "lsh", "variant"]) == {""}
    assert "demo / noise-sym0.5" in (wf / "results/summary/tables.md").read_text()
    table = (wf / "results/summary/noise_table.md").read_text()
    assert "| rshnl |" in table and "| ce_centre |" in table and "0.5 / 16 bits" in table


def test_noise_rate_change_reruns_only_the_noisy_track(wf, tmp_path):
    other = tmp_path / "rates.yaml"
    other.write_text("noise: {rates: [0.2]}\n")
    jobs = planned_jobs(wf, NOISE, str(other))
    rules = {r for r, _ in jobs}
    assert "noise" in rules and "train_noisy" in rules
    assert "train" not in rules  # clean runs are untouched
    assert all("sym0.2" in out for r, out in jobs if r in ("noise", "train_noisy"))


def test_a_graph_method_on_the_noisy_track_gets_its_graph(tmp_path):
    wf = copy_workflow(tmp_path)
    (wf / "graph.yaml").write_text("noise: {methods: [vtmuch]}\n")
    out = snakemake(wf, "-n", "--configfile", SMOKE, NOISE, "graph.yaml").stdout
    inputs = re.findall(r"rule train_noisy:\n\s+input: ([^\n]+)", out)
    assert inputs and all("results/demo/graph/synthetic/vtmuch/seed0.h5" in i for i in inputs), out
    assert re.search(r"^graph\s+1$", out, flags=re.M), out


def test_paper_config_plans_the_noise_grid(tmp_path):

    wf = copy_workflow(tmp_path)
    out = snakemake(wf, "-n", "--configfile", "config/paper/rshnl.yaml").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    # 4 rates x 4 methods x 4 bits x 1 seed on the noisy track, 4 x 4 clean runs
    assert counts["noise"] == "4" and counts["train_noisy"] == "64" and counts["train"] == "16"
