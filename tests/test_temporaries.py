"""A write killed midway leaves its temporary behind; the next write of the same path, or
the next start of its job, removes it, and never the temporary of a live writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from xmhash.io import atomic_path, sweep_stale

# a writer in another process: a big temporary, then it waits (to be killed, or for EOF)
WRITER = """
import sys
from xmhash.io import atomic_path
with atomic_path(sys.argv[1], directory=sys.argv[2] == "dir") as tmp:
    (tmp / "part" if sys.argv[2] == "dir" else tmp).write_bytes(b"x" * 100_000)
    print(tmp, flush=True)
    sys.stdin.read()
"""
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def writer(path: Path, kind: str = "file") -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    return proc, Path(proc.stdout.readline().strip())


def killed(path: Path, kind: str = "file") -> Path:
    proc, tmp = writer(path, kind)
    proc.kill()
    proc.wait(timeout=30)
    return tmp


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_killed_writers_temporary_goes_and_a_live_ones_stays(tmp_path, kind):
    ckpt = tmp_path / "run" / "model.ckpt"
    live, live_tmp = writer(ckpt, kind)
    try:
        dead_tmp = killed(ckpt, kind)
        assert dead_tmp.name.startswith(".model.ckpt.") and dead_tmp.name.endswith(".partial")
        assert dead_tmp.exists() and live_tmp.exists()
        assert sweep_stale(ckpt) == [dead_tmp]
        assert not dead_tmp.exists() and not Path(f"{dead_tmp}.lock").exists()
        assert live_tmp.exists()  # its writer is alive: never touched
    finally:
        live.stdin.close()  # the live writer finishes its write
        assert live.wait(timeout=30) == 0
    assert ckpt.exists() and not live_tmp.exists()
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["model.ckpt"]


def test_only_the_paths_own_temporaries_are_swept(tmp_path):
    out = tmp_path / "model.ckpt"
    older = tmp_path / ".model.ckpt.k9x2ab_q.partial"  # an older xmhash's: no lock
    older.write_bytes(b"x")
    others = [
        tmp_path / ".model.ckpt.resume.partial",  # not a temporary's name
        tmp_path / ".model.ckpt2.abcdefgh.partial",  # another output's
        tmp_path / ".codes.h5.abcdefgh.partial",
    ]
    for p in others:
        p.write_bytes(b"x")
    assert sweep_stale(out) == [older]
    assert all(p.exists() for p in others)


def test_the_next_write_of_the_path_sweeps_first(tmp_path):
    out = tmp_path / "table.md"
    dead = killed(out)
    with atomic_path(out) as tmp:
        assert not dead.exists()
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_job_sweeps_its_outputs_temporaries_when_it_starts(tmp_path):
    """scripts/_bootstrap.py, which every job's script starts with."""
    out = tmp_path / "results" / "codes.h5"
    dead = killed(out)
    other = killed(tmp_path / "results" / "other.h5")
    start = (
        "import sys, types; sys.path.insert(0, sys.argv[1]); from _bootstrap import init; "
        "init(types.SimpleNamespace(log=[], output=[sys.argv[2]]))"
    )
    subprocess.run(
        [sys.executable, "-c", start, str(REPO / "scripts"), str(out)], check=True, env=ENV
    )
    assert not dead.exists() and other.exists()


def test_training_sweeps_its_checkpoints_temporaries(small_demo, tmp_path):
    from test_train import _data, _toy

    from xmhash.train import TrainSettings, fit

    ckpt = tmp_path / "model.ckpt"
    dead = killed(ckpt)
    fit(_toy(), _data(small_demo, range(100)), TrainSettings(device="cpu"), checkpoint=ckpt)
    assert not dead.exists()
