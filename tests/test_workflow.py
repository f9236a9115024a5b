"""Whole-workflow tests: a small demo through Snakemake, then what a change reruns."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_workflow, snakemake

pytestmark = pytest.mark.workflow

SMOKE = "tests/config/smoke.yaml"


def planned_jobs(wf: Path, *configfiles: str) -> set[tuple[str, str]]:
    """(rule, first output) of every job a dry run would execute."""
    args = ["-n", "--cores", "2", "--configfile", SMOKE, *configfiles]
    out = snakemake(wf, *args).stdout
    jobs, rule = set(), None
    for line in out.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):", line)  # indented in group jobs
        if m:
            rule = m.group(1)
            if rule == "all":
                jobs.add(("all", ""))
        m = re.match(r"^\s+output: ([^,\s]+)", line)
        if m and rule:
            jobs.add((rule, m.group(1)))
            rule = None
    return jobs


def runs_of(jobs: set[tuple[str, str]], rule: str) -> set[str]:
    """Method names of a per-run rule's jobs."""
    return {Path(out).parts[2] for r, out in jobs if r == rule}


SUMMARY_RULES = {"aggregate", "tables", "plots", "all"}


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    wf = copy_workflow(tmp_path_factory.mktemp("workflow"))
    snakemake(wf, "--cores", "2", "--configfile", SMOKE)
    return wf


def test_demo_produces_tables_plots_and_report(wf):
    summary = wf / "results/summary"
    for name in (
        "metrics.tsv",
        "curves.tsv",
        "tables.md",
        "tables.tex",
        "tables.html",
        "plots/demo/map_vs_bits.png",
        "plots/demo/pr.png",
        "plots/demo/pn.png",
    ):
        assert (summary / name).stat().st_size > 0, name
    run = wf / "results/demo/cca_itq/16bits/seed1"
    for name in ("model.pt", "train.json", "train_log.csv", "codes.h5", "metrics.json"):
        assert (run / name).exists(), name
    assert (wf / "logs/demo/cca_itq/16bits/seed1/train.log").exists()
    assert (wf / "results/benchmarks/demo/cca_itq/16bits/seed1/train.tsv").exists()
    table = (summary / "tables.md").read_text()
    assert "| cca_itq |" in table and "chance (random codes)" in table and "±" in table
    snakemake(wf, "--configfile", SMOKE, "--report", "report.html")
    html = (wf / "report.html").read_text(errors="ignore")
    assert "map_vs_bits.png" in html and "tables.html" in html


def test_cca_itq_beats_lsh_and_both_reach_the_chance_floor(wf):
    df = pd.read_csv(wf / "results/summary/metrics.tsv", sep="\t")
    df = df[df["metric"] == "map@all"]
    mean = df[df["task"].isin(["i2t", "t2i"])].groupby("method")["value"].mean()
    floor = df[df["task"] == "chance"]["value"].mean()
    assert mean["cca_itq"] > mean["lsh"] + 0.02, mean
    assert mean["lsh"] >= floor - 0.005 and mean["cca_itq"] > floor, (mean, floor)


def test_nothing_to_do_after_a_run(wf):
    assert planned_jobs(wf) == set()


def test_method_param_change_reruns_only_that_method(wf, tmp_path):
    overlay = tmp_path / "change.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"cca_itq": {"itq_iters": 7}}}))
    jobs = planned_jobs(wf, str(overlay))
    assert {r for r, _ in jobs} == {"train", "export_codes", "evaluate"} | SUMMARY_RULES
    for rule in ("train", "export_codes", "evaluate"):
        assert runs_of(jobs, rule) == {"cca_itq"}
        assert len([1 for r, _ in jobs if r == rule]) == 4  # 2 bits x 2 seeds


def test_method_param_change_resubmits_only_that_methods_slurm_group(wf, tmp_path):
    # issue 8: the same change with the Slurm profile (a dry run, no cluster needed):
    # one group job for the changed method (all its bits x seeds) and the summary
    overlay = tmp_path / "change.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"cca_itq": {"itq_iters": 7}}}))
    args = ["-n", "--workflow-profile", "workflow/profiles/slurm", "--configfile", SMOKE]
    assert "Group job" not in snakemake(wf, *args).stdout
    out = snakemake(wf, *args, str(overlay)).stdout
    assert sorted(re.findall(r"Group job (\S+) \(jobs", out)) == ["run_demo_cca_itq", "summary"]
    assert not re.findall(r"^(?:\[[^\]]*\] )?rule (?!all:)\w+:", out, flags=re.M)


@pytest.fixture
def edited(wf):
    """Append a comment to a source file of the copied workflow; restore it afterwards."""
    saved = {}

    def edit(rel: str) -> None:
        path = wf / rel
        saved[path] = path.read_text()
        path.write_text(saved[path] + "\n# an edit\n")

    yield edit
    for path, text in saved.items():
        path.write_text(text)


def test_method_code_change_reruns_exactly_that_method(wf, edited):
    edited("src/xmhash/methods/lsh.py")
    jobs = planned_jobs(wf)
    assert {r for r, _ in jobs} == {"train", "export_codes", "evaluate"} | SUMMARY_RULES
    for rule in ("train", "export_codes", "evaluate"):
        assert runs_of(jobs, rule) == {"lsh"}


def test_metrics_code_change_reruns_evaluation_not_training(wf, edited):
    edited("src/xmhash/metrics.py")
    jobs = planned_jobs(wf)
    assert {r for r, _ in jobs} == {"evaluate"} | SUMMARY_RULES
    assert len([1 for r, _ in jobs if r == "evaluate"]) == 8


@pytest.mark.parametrize(
    "overlay, message",
    [
        ({"methods": {"cca_itq": {"regg": 1.0}}}, "regg"),
        ({"run": {"bits": ["many"]}}, "many"),
        ({"evaluation": {"tie_seed": "zero"}}, "tie_seed"),
        ({"run": {"methods": ["nosuchmethod"]}}, "nosuchmethod"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, overlay, message):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "bad.yaml").write_text(yaml.safe_dump(overlay))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "validating config" in proc.stderr + proc.stdout
    assert message in proc.stderr + proc.stdout


def test_lint_is_clean():
    proc = snakemake(REPO, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


PAPER_CONFIGS = sorted(p.name for p in (REPO / "config/paper").glob("*.yaml"))


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_validate_and_plan_every_stage(wf, name):
    """A paper protocol config is valid against the schema and plans training, export and
    evaluation of its whole grid (a dry run: real datasets cannot be downloaded here)."""
    cfg = yaml.safe_load((REPO / "config/paper" / name).read_text())
    out = snakemake(wf, "-n", "--cores", "2", "--configfile", f"config/paper/{name}").stdout
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    run = cfg["run"]
    grid = len(run["datasets"]) * len(run["methods"]) * len(run["bits"]) * len(run["seeds"])
    for rule in ("train", "export_codes", "evaluate"):
        assert counts.get(rule) == grid, (rule, counts)
