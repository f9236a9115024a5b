"""The graph stage in the DAG: built for the methods that need it, rerun on its params."""

from __future__ import annotations

import json

import pytest
import yaml
from test_workflow import SMOKE, SUMMARY_RULES, copy_workflow, planned_jobs, runs_of, snakemake

pytestmark = pytest.mark.workflow

GRID = {
    "run": {"methods": ["lsh", "vtmuch"], "bits": [8], "seeds": [0]},
    "graph": {"vtmuch": {"n_clusters": 8, "kmeans_init": 2}},
    "methods": {"vtmuch": {"epochs": 2, "hidden": 32}},
}
GRAPH = "results/demo/graph/synthetic/vtmuch/seed0"


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("graph_workflow"))
    (wf / "grid.yaml").write_text(yaml.safe_dump(GRID))
    snakemake(wf, "--cores", "2", "--configfile", SMOKE, "grid.yaml")
    return wf


def test_graph_is_built_for_vtmuch_and_feeds_its_training(wf):
    for ext in (".h5", ".json", "_sizes.png"):
        assert (wf / f"{GRAPH}{ext}").exists(), ext
    stats = json.loads((wf / f"{GRAPH}.json").read_text())
    assert stats["kind"] == "vtmuch" and stats["params"]["n_clusters"] == 8
    assert sum(stats["sizes"]) == stats["nodes"] == 300  # the smoke split's training rows
    metrics = json.loads((wf / "results/demo/vtmuch/8bits/seed0/metrics.json").read_text())
    assert metrics
    assert not list((wf / "results/demo/graph/synthetic").glob("knn/*"))  # nobody needs it


def test_nothing_to_do_after_the_run(wf):
    assert planned_jobs(wf, "grid.yaml") == set()


def test_graph_param_change_reruns_the_graph_and_its_method_only(wf):
    (wf / "change.yaml").write_text(yaml.safe_dump({"graph": {"vtmuch": {"si_std": 0.5}}}))
    jobs = planned_jobs(wf, "grid.yaml", "change.yaml")
    assert {r for r, _ in jobs} == (
        {"graph", "graph_plot", "train", "export_codes", "evaluate"} | SUMMARY_RULES
    )
    for rule in ("train", "export_codes", "evaluate"):
        assert runs_of(jobs, rule) == {"vtmuch"}


def test_graph_code_change_reruns_the_graph(wf):
    path = wf / "src/xmhash/graph/vtmuch.py"
    text = path.read_text()
    path.write_text(text + "\n# an edit\n")
    try:
        jobs = planned_jobs(wf, "grid.yaml")
    finally:
        path.write_text(text)
    assert ("graph", f"{GRAPH}.h5") in jobs
    assert runs_of(jobs, "train") == {"vtmuch"}
