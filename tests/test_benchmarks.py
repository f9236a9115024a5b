"""The benchmark scripts' CPU paths: the training benchmark reads the paper configs as the
workflow does and counts FLOPs honestly; the GPU benchmark starts without our other
dependencies, names what to carry, and prints its table last."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_envs import pyproject_pins

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu  # noqa: E402  benchmarks/gpu.py
import train as train_bench  # noqa: E402  benchmarks/train.py

PAPER = REPO / "config" / "paper"


def test_paper_config_sets_the_widths_over_the_demo_block():
    cfg = train_bench.load_config([str(PAPER / "ucch.yaml")])
    ucch = cfg["methods"]["ucch"]
    assert ucch["hidden"] == 8192 and ucch["epochs"] == 20  # the paper's
    assert ucch["batch_size"] == 256 and ucch["alpha"] == 0.7  # config.yaml's, kept
    assert cfg["run"]["bits"] == [16, 32, 64, 128]  # lists are replaced, not merged
    assert train_bench.grid_runs(cfg) == 12


@pytest.mark.parametrize(
    ("paper", "dataset", "n_train", "labels", "single"),
    [
        ("ucch", "mirflickr25k", 20_015 - 2_000 - 2_000, 24, False),  # train: all
        ("vtmuch", "mirflickr25k", 5_000, 24, False),
        ("vtmuch", "nuswide", 5_000, 21, False),
        ("rshnl", "xmedia_like", 4_000, 20, True),
    ],
)
def test_dataset_shape_follows_the_configs_split(paper, dataset, n_train, labels, single):
    cfg = train_bench.load_config([str(PAPER / f"{paper}.yaml")])
    shape = train_bench.dataset_shape(cfg, dataset)
    assert (shape.n_train, shape.dim, shape.n_labels, shape.single_label) == (
        n_train,
        512,
        labels,
        single,
    )


@pytest.mark.slow
def test_epoch_flops_are_those_of_the_paper_width_networks(tmp_path):
    """DJSRH at its paper width (4,096): one epoch is at least the forward and the weight
    gradients of both MLPs for every sample (4 FLOPs per weight and sample) and not much
    more; the timing fields are consistent with the items trained."""
    torch.set_num_threads(1)
    cfg = train_bench.load_config([str(PAPER / "vtmuch.yaml")])
    block = cfg["methods"]["djsrh"]
    assert block["hidden"] == 4096
    feats = train_bench.synthetic_features(train_bench.Shape("t", 64, 512, 24))
    r = train_bench.bench_method(
        "djsrh", block, feats, 16, 1, torch.device("cpu"), tmp_path, profile=False
    )
    net = train_bench.make(train_bench.METHODS["djsrh"], block, 16, 512, "cpu").net
    weights = sum(p.numel() for p in net.parameters() if p.dim() == 2)
    assert 4 * 64 * weights / 1e9 <= r.gflop <= 6 * 64 * weights / 1e9
    assert r.samples_s == pytest.approx(64 / r.seconds)
    assert r.batch == 32 and r.epochs == 80 and r.peak_bytes > 2**20
    assert r.busy != r.busy  # no GPU: not measured (nan)


def test_closed_form_methods_report_their_whole_fit(tmp_path):
    feats = train_bench.synthetic_features(train_bench.Shape("t", 64, 32, 4))
    r = train_bench.bench_method("lsh", {}, feats, 16, 1, torch.device("cpu"), tmp_path)
    assert r.epochs == 1 and r.seconds > 0 and not r.error


def test_missing_modules_are_named_with_the_wheels_that_bring_them():
    assert gpu.missing_modules(["os", "json", "no_such_module_xyz"]) == ["no_such_module_xyz"]
    download, build = gpu.carry_commands(["snakemake", "igraph"])
    assert "--python-version 3.12" in download and "-d .whl" in download
    assert "snakemake==9.27.1" in download and "igraph==1.0.0" in download
    assert "texttable==1.7.2" in download  # igraph's own need
    assert "connection-pool" not in download and "connection-pool==0.0.3" in build
    lines = []
    gpu.report_missing(["leidenalg", "no_such_module_xyz"], out=lines.append)
    text = "\n".join(lines)
    assert "leidenalg==0.12.0" in text and "no wheel list for no_such_module_xyz" in text


def test_carried_versions_are_the_ones_tested_here():
    """The wheels the GPU run carries are those this checkout is tested with: a package
    the project pins, at its pin; one that comes only as a dependency of another carried
    package, at a version that each carried package installed here accepts. Nothing here
    depends on which versions a registry serves today."""
    pins = {canonicalize_name(k): v for k, v in pyproject_pins().items()}
    carried = {
        canonicalize_name(name): version
        for wheels in gpu.CARRY.values()
        for name, version in (pin.split("==") for pin in wheels)
    }
    needed_by: dict[str, list[str]] = {}
    for parent in carried:
        try:
            requires = importlib.metadata.requires(parent) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in map(Requirement, requires):
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name in carried:
                assert req.specifier.contains(carried[name], prereleases=True), (
                    f"{name}: carried {carried[name]}, but {parent} installed here needs "
                    f"{req.specifier}"
                )
                needed_by.setdefault(name, []).append(parent)
    for name, version in carried.items():
        if name in pins:
            assert version == pins[name], f"{name}: carried {version}, pyproject pins {pins[name]}"
        else:
            assert name in needed_by, f"{name}: carried, but no carried package needs it"


@pytest.mark.slow
def test_gpu_benchmark_runs_on_cpu_and_prints_its_table_last():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--sections", "knn", "--cpu-sizes"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "XMHASH_PROGRESS": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    table = lines[lines.index("| section | measure | value | unit | against | note |") :]
    assert table[-1] == lines[-1]  # nothing after the table
    knn = next(line for line in table if "exact kNN fp32" in line)
    assert float(knn.split("|")[3].replace(",", "")) > 0
    assert any("fp16" in line and "CUDA-only" in line for line in table)
