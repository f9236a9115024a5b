"""Whole-workflow tests: a small demo through Snakemake, then what a change reruns."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
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


SUMMARY_RULES = {"aggregate", "tables", "plots", "runtime", "all"}


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
    assert "| CCA-ITQ |" in table and "| chance |" in table and "±" in table
    assert "mAP@all (tie-aware)" in table  # beside mAP@all by default
    snakemake(wf, "--configfile", SMOKE, "--report", "report.html")
    html = (wf / "report.html").read_text(errors="ignore")
    assert "map_vs_bits.png" in html and "tables.html" in html
    assert "mailto:" not in html  # metric names such as mAP@all are literals in the captions
    assert "precision-recall" in html  # the items' labels name them, not their file names
    # the landing page opens on the results: the mAP-vs-bits plot and the main table
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", html).group(1))
    headings = re.findall(r"<h1[^>]*>(.*?)</h1>", desc)
    assert headings[0] == "Results", headings
    first = desc[: desc.index("Setup")]
    assert "<svg" in first and "<table" in first and "CCA-ITQ" in first  # inline, no links
    snakemake(wf, "--configfile", SMOKE, "--report", "report.zip")
    with zipfile.ZipFile(wf / "report.zip") as z:
        names = z.namelist()
    assert any(n.endswith("report.html") for n in names), names
    assert any(n.endswith("map_vs_bits.png") for n in names), names


def test_the_runtime_table_reads_the_benchmark_of_every_job(tmp_path):
    """Every job of the DAG (demo, graph-trained method, noisy track) feeds the runtime
    job: its benchmark file is one of the runtime job's inputs."""
    wf = copy_workflow(tmp_path)
    (wf / "grid.yaml").write_text(
        yaml.safe_dump(
            {
                "run": {"methods": ["lsh", "vtmuch"]},
                "noise": {"methods": ["rshnl"], "rates": [0.5]},
                "evaluation": {"export_mat": True},
            }
        )
    )
    dot = snakemake(wf, "--dag", "--configfile", SMOKE, "grid.yaml").stdout
    rules = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)', dot, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)
    (runtime,) = [n for n, rule in rules.items() if rule == "runtime"]
    feeding = {a for a, b in edges if b == runtime}
    missing = {rules[n] for n in rules if n not in feeding and rules[n] not in ("runtime", "all")}
    assert not missing, f"jobs whose benchmark the runtime table misses: {sorted(missing)}"
    assert {"train", "export_codes", "graph", "noise", "codes_mat", "plots"} <= {
        rules[n] for n in feeding
    }


def test_every_rule_that_works_has_a_benchmark_and_resources_that_grow_on_retry():
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.split(
            r"\n(?=rule |use rule |localrules:|ruleorder:|onerror:)", smk.read_text()
        ):
            if not block.startswith("rule ") or "script:" not in block:
                continue
            name = block.split()[1].rstrip(":")
            assert "benchmark:" in block, f"{smk.name}: rule {name} has no benchmark"
            for res in ("mem_mb", "runtime"):
                assert re.search(rf"{res}=scaled\(", block), f"{smk.name}: {name}.{res} is fixed"


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
    # the same change with the Slurm profile (a dry run, no cluster needed):
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


@pytest.fixture
def new_method(wf):
    """Add a method to the copied workflow as the README says: one file (a copy of lsh
    named lsh2) and one registry line, plus its schema entry; remove it afterwards."""
    methods, schema = wf / "src/xmhash/methods", wf / "workflow/schemas/config.schema.yaml"
    saved = {p: p.read_text() for p in (methods / "__init__.py", schema)}
    text = (methods / "lsh.py").read_text().replace('name = "lsh"', 'name = "lsh2"')
    (methods / "lsh2.py").write_text(text.replace("class LSH(", "class LSH2("))
    init = saved[methods / "__init__.py"]
    init = init.replace(
        "from xmhash.methods.lsh import LSH\n",
        "from xmhash.methods.lsh import LSH\nfrom xmhash.methods.lsh2 import LSH2\n",
    )
    (methods / "__init__.py").write_text(
        init.replace("        LSH,\n", "        LSH,\n        LSH2,\n")
    )
    s = yaml.safe_load(saved[schema])
    s["properties"]["run"]["properties"]["methods"]["items"]["enum"].append("lsh2")
    s["properties"]["methods"]["properties"]["lsh2"] = s["properties"]["methods"]["properties"][
        "lsh"
    ]
    schema.write_text(yaml.safe_dump(s))
    yield "lsh2"
    (methods / "lsh2.py").unlink()
    for path, text in saved.items():
        path.write_text(text)


def test_adding_a_method_reruns_nothing_of_the_other_methods(wf, new_method, tmp_path):
    overlay = tmp_path / "add.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {new_method: {}}}))
    assert planned_jobs(wf, str(overlay)) == set()
    grid = {"methods": {new_method: {}}, "run": {"methods": ["lsh", "cca_itq", new_method]}}
    overlay.write_text(yaml.safe_dump(grid))
    jobs = planned_jobs(wf, str(overlay))
    assert {r for r, _ in jobs} == {"train", "export_codes", "evaluate"} | SUMMARY_RULES
    for rule in ("train", "export_codes", "evaluate"):
        assert runs_of(jobs, rule) == {new_method}


def test_a_version_bump_reruns_nothing(wf, edited):
    path = wf / "src/xmhash/__init__.py"
    edited("src/xmhash/__init__.py")
    path.write_text(path.read_text().replace('__version__ = "', '__version__ = "9'))
    assert planned_jobs(wf) == set()


@pytest.mark.parametrize(
    "overlay",
    [
        {"device": "cpu"},
        {"training": {"checkpoint_minutes": 5}},
        {"training": {"threads": 2}},
        {"training": {"val_every": 3}},  # select: paper never validates
        {"training": {"select_metric": "map"}},  # nor ranks validated epochs
    ],
)
def test_settings_that_do_not_change_any_file_rerun_nothing(wf, tmp_path, overlay):
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(overlay))
    assert planned_jobs(wf, str(tmp_path / "o.yaml")) == set()


def test_export_mat_adds_the_mat_files_and_reruns_nothing_else(wf, tmp_path):
    (tmp_path / "o.yaml").write_text(yaml.safe_dump({"evaluation": {"export_mat": True}}))
    jobs = planned_jobs(wf, str(tmp_path / "o.yaml"))
    assert {r for r, _ in jobs} == {"codes_mat", "runtime", "all"}  # their runtime too
    assert len([1 for r, _ in jobs if r == "codes_mat"]) == 8


@pytest.mark.parametrize(
    "overlay, rules",
    [
        ({"evaluation": {"tie_seed": 3}}, {"evaluate"}),
        ({"training": {"select": "val"}}, {"train", "export_codes", "evaluate"}),
    ],
)
def test_settings_that_change_content_still_rerun(wf, tmp_path, overlay, rules):
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(overlay))
    jobs = planned_jobs(wf, str(tmp_path / "o.yaml"))
    assert {r for r, _ in jobs} == rules | SUMMARY_RULES
    assert len([1 for r, _ in jobs if r == "evaluate"]) == 8


@pytest.mark.parametrize(
    "overlay, message",
    [
        ({"methods": {"cca_itq": {"regg": 1.0}}}, "regg"),
        ({"run": {"bits": ["many"]}}, "many"),
        ({"evaluation": {"tie_seed": "zero"}}, "tie_seed"),
        ({"run": {"methods": ["nosuchmethod"]}}, "nosuchmethod"),
        (
            {"method_overrides": {"demo": {"djsrh": {"lambdaa": 0.3}}}},
            "method_overrides.demo.djsrh.lambdaa",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, overlay, message):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "bad.yaml").write_text(yaml.safe_dump(overlay))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "validating config" in proc.stderr + proc.stdout
    assert message in proc.stderr + proc.stdout


@pytest.mark.parametrize("key", ["bits", "seeds"])
def test_a_config_error_is_short_and_names_the_key(tmp_path, key):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "bad.yaml").write_text(yaml.safe_dump({"run": {key: [16.0]}}))
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"run.{key}[0]: 16.0 is not of type 'integer'" in out, out[-3000:]
    assert len(out.splitlines()) < 20, out  # not the schema (2,600 lines)


def test_a_per_dataset_key_that_names_no_dataset_is_an_error(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "bad.yaml").write_text(
        yaml.safe_dump({"noise": {"overrides": {"wiki": {"rshnl": {"alpha": 0.5}}}}})
    )
    proc = snakemake(wf, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "noise.overrides" in out and "['wiki']" in out and "'wikipedia'" in out, out[-3000:]


def test_the_default_profile_is_in_effect_for_a_plain_run(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "-n", "--cores", "4", "--configfile", SMOKE)
    out = proc.stdout + proc.stderr
    assert "Using workflow specific profile workflow/profiles/default" in out
    # printshellcmds, a setting of that profile, is in force ("Shell command:" per job) ...
    assert "Shell command:" in out
    off = snakemake(wf, "-n", "--cores", "4", "--configfile", SMOKE, "--workflow-profile", "none")
    assert "Shell command:" not in off.stdout + off.stderr
    # ... and so is its local GPU limit, in the same file
    profile = yaml.safe_load((wf / "workflow/profiles/default/config.v8+.yaml").read_text())
    assert profile["resources"] == {"gpu_load": 100} and profile["rerun-incomplete"] is True


def test_cuda_trainings_share_the_gpu_and_whole_gpu_jobs_do_not(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    grid = {"device": "cuda", "jobs_per_gpu": 4, "run": {"methods": ["lsh", "vtmuch"]}}
    (wf / "gpu.yaml").write_text(yaml.safe_dump(grid))
    out = snakemake(wf, "-n", "--cores", "2", "--configfile", SMOKE, "gpu.yaml").stdout
    loads = {}
    for rule, res in re.findall(r"rule (\w+):\n(?:\s+\w+: .*\n)*?\s+resources: (.*)", out):
        found = re.search(r"\bgpu_load=(\d+)", res)
        loads.setdefault(rule, set()).add(int(found[1]) if found else 0)
    assert loads["train"] == loads["export_codes"] == {25}, loads
    assert loads["graph"] == {100} and loads["evaluate"] == loads["split"] == {0}, loads


def test_a_failed_method_leaves_a_summary_of_the_finished_runs_naming_it(tmp_path):
    """A full run, then lsh breaks: under --keep-going the whole summary (tables, plots,
    runtime, graphs) is of the runs that finished this time; nothing of the older summary
    or of lsh's older run is left in it."""
    wf = copy_workflow(tmp_path / "wf")
    (wf / "grid.yaml").write_text(yaml.safe_dump({"run": {"bits": [8], "seeds": [0]}}))
    args = ["--cores", "2", "--keep-going", "--configfile", SMOKE, "grid.yaml"]
    snakemake(wf, *args)
    summary = wf / "results/summary"
    assert "| LSH |" in (summary / "tables.md").read_text()
    (summary / "plots/gone").mkdir()
    (summary / "plots/gone/pr.png").write_text("a plot of an older run\n")
    before = {p: p.stat().st_mtime for p in summary.rglob("*") if p.is_file()}
    lsh = wf / "src/xmhash/methods/lsh.py"
    text = lsh.read_text()
    assert text.count("    def fit(self, data: TrainData) -> None:\n") == 1
    lsh.write_text(
        text.replace(
            "    def fit(self, data: TrainData) -> None:\n",
            "    def fit(self, data: TrainData) -> None:\n        raise RuntimeError('broken')\n",
        )
    )
    proc = snakemake(wf, *args, check=False)
    assert proc.returncode != 0
    table = (summary / "tables.md").read_text()
    assert "| CCA-ITQ |" in table and "| LSH |" not in table, table
    assert "did not finish" in table and "`results/demo/lsh/8bits/seed0`" in table, table
    assert "results/demo/lsh/8bits/seed0" in (summary / "tables.html").read_text()
    runtime = (summary / "runtime.md").read_text()
    assert "| train | cca_itq |" in runtime and "lsh" not in runtime, runtime
    for old, mtime in before.items():  # every file rewritten, or removed
        assert not old.exists() or old.stat().st_mtime > mtime, old
    assert not (summary / "plots/gone").exists()
    for name in ("map_vs_bits", "pr", "pn", "training"):
        assert (summary / f"plots/demo/{name}.png").stat().st_size > 0, name
    assert (summary / "graphs.md").exists() and (summary / "metrics.tsv").exists()


def test_a_deleted_run_is_rebuilt_by_a_plain_run(wf, tmp_path):
    wf = shutil.copytree(wf, tmp_path / "wf", symlinks=True)
    shutil.rmtree(wf / "results/demo/lsh/8bits/seed0")
    jobs = planned_jobs(wf)
    assert {r for r, _ in jobs} == {"train", "export_codes", "evaluate"} | SUMMARY_RULES, jobs
    for rule in ("train", "export_codes", "evaluate"):
        outs = [out for r, out in jobs if r == rule]
        assert len(outs) == 1 and outs[0].startswith("results/demo/lsh/8bits/seed0/"), jobs


def test_the_template_test_config_plans_the_small_grid():
    proc = snakemake(REPO, "-n", "--cores", "1", "--directory", ".test")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert counts["train"] == counts["evaluate"] == "8", counts


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
