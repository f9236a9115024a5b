"""Provenance records: what produced train.json and metrics.json."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xmhash import __version__
from xmhash.provenance import file_digest, git_commit, provenance


def test_provenance_records_version_inputs_and_software(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"xmhash" * 1000)
    rec = provenance({"a": a, "missing": None}, device="cpu")
    assert rec["xmhash"] == __version__
    assert rec["inputs"] == {"a": "sha256:" + hashlib.sha256(a.read_bytes()).hexdigest()}
    assert rec["device"] == "cpu"
    assert rec["python"].count(".") == 2
    assert rec["torch"] is not None and "cuda" in rec
    json.dumps(rec)  # JSON-ready


def test_digest_changes_with_content(tmp_path):
    p = tmp_path / "x"
    p.write_text("one")
    before = file_digest(p)
    p.write_text("two")
    assert file_digest(p) != before


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert git_commit(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_marks_a_dirty_checkout(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    commit = git_commit(tmp_path)
    assert commit is not None and len(commit) == 40
    (tmp_path / "f").write_text("2")
    assert git_commit(tmp_path) == f"{commit}-dirty"


def test_provenance_does_not_import_torch():
    code = (
        "import sys; from xmhash.provenance import provenance; r = provenance({}); "
        "print('torch' in sys.modules, r['torch'] is not None)"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {src!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "True"]


def test_metrics_json_records_provenance(tmp_path, small_demo_file, small_demo):
    from xmhash.codes import Codes, make_codeset, save_codes
    from xmhash.evaluate import evaluate_run

    rng = np.random.default_rng(0)

    def codeset(rows):
        return make_codeset(
            rng.choice([-1, 1], (len(rows), 16)),
            rng.choice([-1, 1], (len(rows), 16)),
            small_demo.ids[rows],
            rows,
        )

    codes = tmp_path / "codes.h5"
    save_codes(codes, Codes(16, codeset(np.arange(20)), codeset(np.arange(20, 200)), {}))
    out = tmp_path / "metrics.json"
    evaluate_run(
        codes=str(codes), features=str(small_demo_file), out=str(out), ks=[], pn=[10], tie_seed=0
    )
    rec = json.loads(out.read_text())["provenance"]
    assert rec["inputs"] == {"codes": file_digest(codes), "features": file_digest(small_demo_file)}
    assert rec["xmhash"] == __version__


def test_train_json_records_provenance(tmp_path, small_demo_file):
    from xmhash.data.splits import make_split, save_split
    from xmhash.train import TrainSettings, run_training

    split = tmp_path / "split.npz"
    save_split(split, make_split(600, seed=0, query=50, train=300, val=50))
    summary = run_training(
        features=str(small_demo_file),
        split=str(split),
        method="lsh",
        params={},
        bits=16,
        seed=0,
        settings=TrainSettings(device="cpu"),
        model_out=str(tmp_path / "model.pt"),
        summary_out=str(tmp_path / "train.json"),
        history_out=str(tmp_path / "train_log.csv"),
    )
    rec = json.loads((tmp_path / "train.json").read_text())["provenance"]
    assert rec == summary["provenance"]
    assert rec["inputs"] == {"features": file_digest(small_demo_file), "split": file_digest(split)}
    assert rec["device"] == "cpu" and rec["torch"].startswith("2.")
