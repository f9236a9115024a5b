"""Shared fixtures: small synthetic data, built fast, never downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# test the checkout the tests live in, whatever copy of xmhash is pip-installed
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("XMHASH_PROGRESS", "0")


@pytest.fixture(scope="session")
def small_demo():
    """A small demo dataset (600 items, 64-d features) as a Features object."""
    from xmhash.data.demo import DemoSpec, generate_demo

    return generate_demo(
        DemoSpec(
            n_items=600,
            n_labels=8,
            latent_dim=16,
            image_dim=64,
            text_dim=64,
            words_per_label=2,
            noise_words=10,
        )
    )


@pytest.fixture(scope="session")
def small_demo_file(small_demo, tmp_path_factory) -> Path:
    from xmhash.features.store import write_features

    path = tmp_path_factory.mktemp("demo") / "synthetic.h5"
    write_features(path, small_demo)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real metadata for tests); XMHASH_SHARED overrides."""
    path = Path(os.environ.get("XMHASH_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        raise FileNotFoundError(f"shared data not found at {path}; set XMHASH_SHARED")
    return path


# ---------------------------------------------------------------- workflow runs
COPY = [
    "Snakefile",
    "config.yaml",
    "pyproject.toml",
    "workflow",
    "scripts",
    "envs",
    "src",
    "config",
    "tests/config",
]


def copy_workflow(dst: Path) -> Path:
    for name in COPY:
        src = REPO / name
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


def snakemake(wf: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "XMHASH_PROGRESS": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc
