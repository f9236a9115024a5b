"""The Slurm profile: job groups and reruns (dry runs, no cluster), and the demo on a
real single-node Slurm.

The real-Slurm test needs root and apt (.ci/slurm/setup.sh installs Debian's munge,
slurmctld, slurmd and slurm-client when missing, then starts them) and runs only when
XMHASH_SLURM_TEST=1, which .ci/run sets. Everything it starts is stopped by PID
(.ci/slurm/teardown.sh), also when the test fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, snakemake

SMOKE = "tests/config/smoke.yaml"
SLURM_CFG = "tests/config/slurm.yaml"
CI = REPO / ".ci/slurm"
SLURM_PROFILE = "workflow/profiles/slurm"
CI_PROFILE = "workflow/profiles/slurm-ci"
RUNDIR = Path(os.environ.get("XMHASH_SLURM_RUNDIR", "/tmp/xmhash-slurm"))
# seconds for one Snakemake run on the CI cluster (then SIGINT); more on a loaded machine
TIMEOUT = int(os.environ.get("XMHASH_SLURM_TIMEOUT", "240"))


def planned_submissions(wf: Path, *args: str) -> tuple[list[str], list[str]]:
    """Dry run with a Slurm profile: (group jobs, ungrouped non-`all` rules) it would submit."""
    out = snakemake(wf, "-n", *args).stdout
    groups = re.findall(r"Group job (\S+) \(jobs", out)
    single = re.findall(r"^(?:\[[^\]]*\] )?rule (\w+):", out, flags=re.M)
    return sorted(groups), sorted(r for r in single if r != "all")


# ---------------------------------------------------------------- dry runs, no cluster


@pytest.mark.workflow
def test_profiles_plan_without_slurm_and_group_runs_per_dataset_and_method(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    for profile in (SLURM_PROFILE, CI_PROFILE):
        groups, single = planned_submissions(
            wf, "--workflow-profile", profile, "--configfile", SMOKE
        )
        # smoke grid: 1 dataset x 2 methods x 2 bits x 2 seeds = 8 runs, 24 jobs
        assert groups == ["run_demo_cca_itq", "run_demo_lsh", "splits_demo", "summary"]
        assert single == ["demo_features"]


@pytest.mark.workflow
def test_count_jobs_agrees_with_the_grid(tmp_path):
    sys.path.insert(0, str(CI))
    try:
        from count_jobs import count_submissions, group_components
    finally:
        sys.path.remove(str(CI))
    grid = {
        "run": {
            "datasets": ["demo"],
            "methods": ["lsh", "cca_itq"],
            "bits": [8, 16, 32],
            "seeds": [0, 1],
        }
    }
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid))
    counts = count_submissions(
        [str(REPO / SMOKE), str(cfg)], group_components(REPO / SLURM_PROFILE)
    )
    runs = 2 * 3 * 2
    per_rule = counts["per_rule"]
    assert per_rule["train"] == per_rule["export_codes"] == per_rule["evaluate"] == runs
    assert counts["local"] == ["all"]
    assert counts["without_groups"] == sum(per_rule.values()) - 1
    # one job per dataset x method, one for the splits, one for the summary, features
    assert counts["with_groups"] == 2 + 1 + 1 + per_rule["demo_features"]


def planned_gpus(wf: Path, *args: str) -> dict[str, set[int]]:
    """rule -> the `gpu` resource values of its jobs in a dry run (0 when not declared)."""
    out = snakemake(wf, "-n", *args).stdout
    gpus: dict[str, set[int]] = {}
    rule = None
    for line in out.splitlines():
        m = re.match(r"^\s*(?:\[[^\]]*\] )?(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"^\s+resources: (.*)", line)
        if m and rule:
            found = re.search(r"\bgpu=(\d+)", m.group(1))
            gpus.setdefault(rule, set()).add(int(found.group(1)) if found else 0)
            rule = None
    return gpus


@pytest.mark.workflow
def test_gpu_is_requested_only_for_cuda_jobs(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    for device, want in (("cuda:1", 1), ("cpu", 0), ("auto", 0)):
        (wf / "device.yaml").write_text(yaml.safe_dump({"device": device}))
        gpus = planned_gpus(
            wf, "--workflow-profile", SLURM_PROFILE, "--configfile", SMOKE, "device.yaml"
        )
        assert gpus["train"] == gpus["export_codes"] == {want}, (device, gpus)
        assert gpus["evaluate"] == gpus["split"] == {0}, (device, gpus)


# Every rule whose job runs on the configured `device` (the feature stage, graphs, the
# clean and the noisy track's training and export); all other rules run on CPU.
GPU_RULES = {"features", "graph", "train", "export_codes", "train_noisy", "export_codes_noisy"}
# a grid with every kind of job: a generated image dataset (feature stage), a graph
# method (vtmuch) and the noisy-label track
GPU_GRID = {
    "run": {
        "datasets": ["demo", "shapes"],
        "methods": ["lsh", "vtmuch"],
        "bits": [8],
        "seeds": [0],
    },
    "datasets": {
        "shapes": {
            "source": "demo_images",
            "encoder": "vitb32",
            "demo_images": {"n_items": 120, "n_labels": 6, "image_size": 48, "n_query": 20},
            "split": {"query": 20, "train": 60, "val": 10},
        }
    },
    "noise": {"methods": ["rshnl"], "kinds": ["sym"], "rates": [0.5]},
}


@pytest.mark.workflow
@pytest.mark.parametrize("profile", ["workflow/profiles/default", SLURM_PROFILE])
def test_every_job_on_the_configured_device_requests_a_gpu_exactly_on_cuda(tmp_path, profile):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "grid.yaml").write_text(yaml.safe_dump(GPU_GRID))
    for device, want in (("cuda", 1), ("cpu", 0)):
        (wf / "device.yaml").write_text(yaml.safe_dump({"device": device}))
        args = ["--workflow-profile", profile, "--configfile", SMOKE, "grid.yaml", "device.yaml"]
        gpus = planned_gpus(wf, "--cores", "2", *args)  # a dry run: no CUDA needed
        assert GPU_RULES <= set(gpus), sorted(gpus)
        for rule, values in gpus.items():
            assert values == ({want} if rule in GPU_RULES else {0}), (device, rule, values)


# ---------------------------------------------------------------- a real Slurm


def _slurm_enabled() -> bool:
    return os.environ.get("XMHASH_SLURM_TEST") == "1"


@pytest.fixture(scope="module")
def slurm_cluster():
    if not _slurm_enabled():
        pytest.skip("set XMHASH_SLURM_TEST=1 (as root, with apt) to start a local Slurm")
    if os.geteuid() != 0:
        pytest.fail(
            "XMHASH_SLURM_TEST=1 needs root: .ci/slurm/setup.sh installs and "
            "starts munge/slurmctld/slurmd"
        )
    try:
        subprocess.run(["bash", str(CI / "setup.sh"), str(RUNDIR)], check=True, timeout=600)
        yield RUNDIR
    finally:
        subprocess.run(["bash", str(CI / "teardown.sh"), str(RUNDIR)], timeout=120)


def run_on_slurm(wf: Path, *configfiles: str, extra: tuple[str, ...] = (), ok: bool = True) -> str:
    """One Snakemake run through the CI profile; SIGINT (which cancels the Slurm jobs)
    after TIMEOUT seconds, KILL 30 s later. Returns stdout + stderr; with ok, asserts
    that the run succeeded."""
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "30",
        str(TIMEOUT),
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        CI_PROFILE,
        *extra,
        "--configfile",
        *configfiles,
    ]
    proc = subprocess.run(
        cmd, cwd=wf, capture_output=True, text=True, env={**os.environ, "XMHASH_PROGRESS": "0"}
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or not ok, f"rc={proc.returncode} (124 = timed out)\n{out[-6000:]}"
    assert proc.returncode != 124, f"timed out\n{out[-6000:]}"
    return out


def submitted(out: str) -> dict[str, Path]:
    """Slurm job id -> job output file, from 'submitted with SLURM jobid N (log: F)'."""
    return {
        m[0]: Path(m[1])
        for m in re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", out)
    }


def slurm_states(ids) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", "--jobs", ",".join(ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|") for line in out.split())


@pytest.mark.slurm
def test_demo_runs_under_slurm_and_a_param_change_resubmits_one_group(slurm_cluster, tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    out = run_on_slurm(wf, SMOKE, SLURM_CFG)

    jobs = submitted(out)
    # features, splits group, one group per method, summary group
    assert len(jobs) == 5, out[-4000:]
    assert slurm_states(jobs) == dict.fromkeys(jobs, "COMPLETED")
    for job_id, log in jobs.items():
        text = log.read_text()  # Slurm's job output (kept by the CI profile)
        assert log.stem == job_id and "--executor slurm-jobstep" in text, log
        assert re.search(r"Finished job|steps \(100%\) done", text), text[-2000:]
    groups = {log.parent.name for log in jobs.values()}
    assert {
        "group_run_demo_lsh_evaluate_export_codes_train",
        "group_run_demo_cca_itq_evaluate_export_codes_train",
    } <= groups

    for method in ("lsh", "cca_itq"):
        run = wf / f"results/demo/{method}/8bits/seed0"
        for name in ("model.pt", "codes.h5", "metrics.json"):
            assert (run / name).stat().st_size > 0, run / name
    assert "| CCA-ITQ |" in (wf / "results/summary/tables.md").read_text()

    # a parameter of one method: only that method's group and the summary go to Slurm
    overlay = wf / "change.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"cca_itq": {"itq_iters": 7}}}))
    lsh_model = wf / "results/demo/lsh/8bits/seed0/model.pt"
    before = lsh_model.stat().st_mtime_ns
    out = run_on_slurm(wf, SMOKE, SLURM_CFG, str(overlay))
    again = submitted(out)
    assert {log.parent.name for log in again.values()} == {
        "group_run_demo_cca_itq_evaluate_export_codes_train",
        "group_summary_aggregate_plots_runtime_tables",
    }
    assert not set(again) & set(jobs)
    assert lsh_model.stat().st_mtime_ns == before

    # `device: cuda`: every job on the configured device asks Slurm for a GPU. The CI node
    # has none, so Slurm rejects exactly those submissions ("Invalid generic resource"),
    # which shows that the request reached sbatch; no GPU job runs here. A rejected
    # submission ends a Snakemake run, so each kind of GPU job is its own run, with a
    # target whose CPU inputs (the generated images, the noisy labels) can run first;
    # training is forced to rerun because the device alone reruns nothing.
    gpu = {
        **GPU_GRID,
        "device": "cuda",
        "noise": {"methods": ["rshnl"], "kinds": ["set"], "rates": [0.5]},
    }
    (wf / "gpu.yaml").write_text(yaml.safe_dump(gpu))
    targets = (
        "results/shapes/features/vitb32.h5",
        "results/demo/graph/synthetic/vtmuch/seed0.h5",
        "results/demo/lsh/8bits/seed0/model.pt",
        "results/demo/noiseset0.5/rshnl/8bits/seed0/model.pt",
    )
    names, calls = set(), []
    for target in targets:
        # --verbose: the plugin logs every sbatch call (a group job's rejection is
        # reported without it)
        extra = (target, "--verbose", "--forcerun", "train")
        out = run_on_slurm(wf, SMOKE, SLURM_CFG, "gpu.yaml", extra=extra, ok=False)
        text = out.replace("\\n", "\n")
        rejected = re.findall(
            r"SLURM sbatch failed\. The error message was '([^']*)'\.?\s+sbatch call:\s+(sbatch[^\n]*)",
            text,
        )
        for error, call in rejected:
            assert "--gpus=1" in call and "generic resource" in error, (error, call)
            found = re.search(r"rule_(\w+?)(?:_wildcards|['\"\s]|$)", call)
            names.add(found[1] if found else call)
        gpu_calls = [
            c for c in re.findall(r"sbatch call:\s+(sbatch[^\n]*)", text) if "--gpus=1" in c
        ]
        assert gpu_calls, (target, out[-6000:])
        calls += gpu_calls
    # the feature stage, the graph, and the group jobs of a clean and a noisy run's
    # training, each with its GPU request on the sbatch line
    assert {"features", "graph"} <= names, calls
    for group in ("run_demo_lsh", "run_demo_rshnl"):
        assert any(group in call for call in calls), (group, calls)
    # the CPU jobs they depend on were submitted without a GPU and ran
    assert (wf / "results/demo/noise/set0.5/seed0.npz").exists()
    assert (wf / "resources/shapes/prepared/items.jsonl").exists()
