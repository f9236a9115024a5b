"""One writer per feature file: a second process never deletes, resumes or renames a
partial file another process is writing, and only a complete file reaches the output."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from xmhash.features.store import (
    FeatureFileBusy,
    FeatureFileError,
    Features,
    FeatureWriter,
    lock_path,
    partial_path,
    read_features,
)

SHAPE = {"fingerprint": "x", "n_labels": 2, "image_dim": 3, "text_dim": 3}

# a writer in another process: one chunk, then waits for a line on stdin ("finish" or EOF)
WRITER = """
import sys
import numpy as np
from xmhash.features.store import Features, FeatureWriter

def chunk(c):
    return Features(
        ids=np.array([f"c{c}i{i}" for i in range(4)], dtype=object),
        labels=np.ones((4, 2), np.uint8),
        image=np.full((4, 3), c, np.float32),
        text=np.full((4, 3), c, np.float32),
    )

w = FeatureWriter(sys.argv[1], fingerprint="x", n_labels=2, image_dim=3, text_dim=3)
w.append(chunk(0), consumed=4)
print("ready", flush=True)
if sys.stdin.readline().strip() == "finish":
    w.append(chunk(1), consumed=8)
    w.finish(label_names=["a", "b"], attrs={}, items=8)
    print("finished", flush=True)
"""


def chunk(c: int) -> Features:
    return Features(
        ids=np.array([f"c{c}i{i}" for i in range(4)], dtype=object),
        labels=np.ones((4, 2), np.uint8),
        image=np.full((4, 3), c, np.float32),
        text=np.full((4, 3), c, np.float32),
    )


@pytest.fixture
def other_writer(tmp_path):
    out = tmp_path / "features" / "enc.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.stdout.readline().strip() == "ready"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_a_second_writer_stops_naming_the_first_and_leaves_its_partial(other_writer):
    out, proc = other_writer
    with pytest.raises(FeatureFileBusy, match=f"pid {proc.pid} on host {socket.gethostname()}"):
        FeatureWriter(out, **SHAPE)
    assert partial_path(out).exists() and not out.exists()
    proc.stdin.write("finish\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "finished"
    assert proc.wait(timeout=30) == 0
    f = read_features(out)  # the first writer's file, whole: its partial was not touched
    assert len(f) == 8 and list(f.ids[:2]) == ["c0i0", "c0i1"]
    assert not partial_path(out).exists() and not lock_path(out).exists()


def test_after_the_first_writer_is_killed_the_second_resumes_its_partial(other_writer):
    out, proc = other_writer
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    w = FeatureWriter(out, **SHAPE)
    assert (w.consumed, w.chunks) == (4, 1)
    w.append(chunk(1), consumed=8)
    w.finish(label_names=["a", "b"], attrs={}, items=8)
    f = read_features(out)
    np.testing.assert_array_equal(f.image[:, 0], [0] * 4 + [1] * 4)


def test_an_incomplete_partial_is_never_renamed_onto_the_output(tmp_path):
    out = tmp_path / "enc.h5"
    w = FeatureWriter(out, **SHAPE)
    w.append(chunk(0), consumed=4)
    with pytest.raises(FeatureFileError, match="4 of 8 items written"):
        w.finish(label_names=["a", "b"], attrs={}, items=8)
    w.close()
    assert not out.exists() and partial_path(out).exists() and not lock_path(out).exists()
    partial_path(out).rename(tmp_path / "elsewhere")  # replaced under a running writer
    w = FeatureWriter(out, **SHAPE)
    w.append(chunk(0), consumed=4)
    shutil.rmtree(partial_path(out))
    (tmp_path / "elsewhere").rename(partial_path(out))
    with pytest.raises(FeatureFileError, match="removed or replaced"):
        w.finish(label_names=["a", "b"], attrs={}, items=4)
    w.close()
    assert not out.exists()


def test_a_chunk_changed_under_the_writer_is_not_finished(tmp_path):
    out = tmp_path / "enc.h5"
    w = FeatureWriter(out, **SHAPE)
    w.append(chunk(0), consumed=4)
    w.append(chunk(1), consumed=8)
    chunks = sorted(partial_path(out).iterdir())
    shutil.copy(chunks[0], chunks[1])  # the right shapes, the wrong content
    with pytest.raises(FeatureFileError, match="differs from what was committed"):
        w.finish(label_names=["a", "b"], attrs={}, items=8)
    w.close()
    assert not out.exists()


def test_a_partial_file_of_the_single_file_layout_is_replaced(tmp_path, caplog):
    out = tmp_path / "enc.h5"
    partial_path(out).write_bytes(b"an older xmhash's partial file")
    with caplog.at_level("WARNING", logger="xmhash.features.store"):
        w = FeatureWriter(out, **SHAPE)
    assert "partial file of an older xmhash; starting over from item 0" in caplog.text
    assert w.consumed == 0 and partial_path(out).is_dir()
    w.append(chunk(0), consumed=4)
    w.finish(label_names=["a", "b"], attrs={}, items=4)
    assert len(read_features(out)) == 4
