"""UCMFH's official protocol as configuration, and the side-by-side harness's file layout:
what the official loader would read is what our feature file and split hold, row for row.
No checkout of the official code is needed."""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from xmhash.bits import pack
from xmhash.data.splits import make_split, split_features
from xmhash.features.store import read_features, read_official_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "official"))

import _harness as H  # noqa: E402
import ucmfh as bench  # noqa: E402


def _case(tmp_path, n_train=128, n_database=256, n_test=128, config=None):
    args = argparse.Namespace(
        n_train=n_train,
        n_database=n_database,
        n_test=n_test,
        image_dim=512,
        text_dim=512,
        epochs=None,
        device="cpu",
    )
    work = tmp_path / "seed0"
    case = H.Case.in_folder(
        work, seed=0, bits=16, config=config or H.paper_config("ucmfh"), args=args
    )
    case.official_dir.mkdir(parents=True)
    return case


def _official_loader(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """What load_dataset keeps of each pickle: float32 image/text, int64 labels, train[:4992]."""
    out = {}
    for part in ("train", "query", "retrieval"):
        with open(folder / f"{part}.pkl", "rb") as fh:
            data = pickle.load(fh)
        assert sorted(data) == ["image", "label", "text"]
        keep = slice(0, 4992) if part == "train" else slice(None)
        out[part] = {
            "image": np.asarray(data["image"], np.float32)[keep],
            "text": np.asarray(data["text"], np.float32)[keep],
            "label": np.asarray(data["label"], np.int64)[keep],
        }
    return out


def test_paper_config_is_the_official_protocol():
    over = yaml.safe_load((REPO / "config/paper/ucmfh.yaml").read_text())
    assert over["training"]["select"] == "paper"  # no selection: the last epoch
    assert over["evaluation"]["database"] == "retrieval"
    u = over["methods"]["ucmfh"]
    for key, value in bench.FIXED.items():
        assert u[key] == value, key
    assert u["epochs"] == 100 and u["centre_inputs"] == "never"  # test-flickr.sh; no centring
    assert over["datasets"]["mirflickr25k"]["split"] == {"query": 2000, "train": 4992, "val": 0}
    assert over["method_overrides"]["nuswide"]["ucmfh"] == {"epochs": 150}
    assert over["method_overrides"]["coco2014"]["ucmfh"] == {
        "epochs": 500,
        "lr_milestones": [200],
        "lr_gamma": 0.6,
    }
    # merged over config.yaml, the harness reads the same values
    merged = H.paper_config("ucmfh")
    assert merged["methods"]["ucmfh"]["fusion_layers"] == 2
    assert merged["methods"]["ucmfh"]["hidden"] == 4096


def test_paper_split_on_mirflickr_sizes_is_the_official_one():
    """2,000 queries rank all 18,015 other items; 4,992 of those train; nothing held out."""
    sp = make_split(20015, query=2000, train=4992, val=0, seed=3)
    assert len(sp.query) == 2000 and len(sp.database) == 18015 and len(sp.val) == 0
    assert len(sp.train) == 4992 and np.isin(sp.train, sp.database).all()
    np.testing.assert_array_equal(np.union1d(sp.query, sp.database), np.arange(20015))


def test_layout_round_trips_to_our_feature_file_and_split(tmp_path):
    case = _case(tmp_path)
    bench.write_data(case)
    official = _official_loader(case.official_dir / "Dataset" / "mirflickr")
    feats = read_features(case.features)
    rows = bench.official_rows(128, 256, 128)
    np.testing.assert_array_equal(rows["query"], np.arange(256, 384))  # the last rows query
    np.testing.assert_array_equal(rows["train"], np.arange(128))  # ... a part of retrieval
    for part, r in rows.items():
        got = official[part]
        assert got["image"].shape == (len(r), 512) and got["text"].shape == (len(r), 512)
        np.testing.assert_array_equal(got["image"], feats.image[r])
        np.testing.assert_array_equal(got["text"], feats.text[r])
        np.testing.assert_array_equal(got["label"], feats.labels[r].astype(np.int64))
    where = read_official_split(case.features)
    assert list(np.unique(where)) == ["database", "query", "train"]
    sp = split_features(case.features, tmp_path / "split.npz", seed=5, **case.extra["split"])
    np.testing.assert_array_equal(sp.query, rows["query"])
    np.testing.assert_array_equal(sp.database, rows["retrieval"])
    np.testing.assert_array_equal(sp.train, rows["train"])
    assert len(sp.val) == 0
    assert case.extra["database"] == "retrieval"
    # save_checkpoints writes into ./checkpoints/hash of the official working folder
    assert (case.official_dir / "checkpoints" / "hash").is_dir()


def test_captured_calls_become_codes_of_the_right_rows(tmp_path):
    case = _case(tmp_path)
    bench.write_data(case)
    rng = np.random.default_rng(0)
    q_i, q_t, r_i, r_t = (rng.choice([-1.0, 1.0], (n, 16)) for n in (128, 128, 256, 256))
    arrays = {  # I->T: (image queries, retrieval texts); T->I: (text queries, retrieval images)
        "call0_qu_B": q_i,
        "call0_re_B": r_t,
        "call1_qu_B": q_t,
        "call1_re_B": r_i,
    }
    codes = bench.official_codes(case, arrays)
    np.testing.assert_array_equal(codes.query.image, pack(q_i))
    np.testing.assert_array_equal(codes.query.text, pack(q_t))
    np.testing.assert_array_equal(codes.database.image, pack(r_i))
    np.testing.assert_array_equal(codes.database.text, pack(r_t))
    np.testing.assert_array_equal(codes.query.index, np.arange(256, 384))
    np.testing.assert_array_equal(codes.database.index, np.arange(256))
    with pytest.raises(SystemExit, match="expected 128"):
        bench.official_codes(case, {**arrays, "call0_qu_B": q_i[:100]})


def test_sizes_the_official_loaders_would_cut_are_refused():
    bench.check_sizes(128, 256, 128)
    with pytest.raises(SystemExit, match="--n-test 100: .*multiple of 128"):
        bench.check_sizes(128, 256, 100)
    with pytest.raises(SystemExit, match="--n-database 200"):
        bench.check_sizes(128, 200, 128)
    with pytest.raises(SystemExit, match="--n-train 64"):
        bench.check_sizes(64, 256, 128)


def test_a_setting_the_official_code_fixes_must_match(tmp_path):
    config = H.paper_config("ucmfh")
    config["methods"]["ucmfh"]["hidden"] = 1024
    case = _case(tmp_path, config=config)
    with pytest.raises(SystemExit, match="methods.ucmfh.hidden is 1024.*4096"):
        bench.our_params(case)


def test_official_arguments_carry_the_schedule_and_code_length(tmp_path):
    case = _case(tmp_path)
    argv = bench.official_argv(case)
    assert argv[argv.index("--epoch") + 1] == "100"
    assert argv[argv.index("--hash_lens") + 1] == "16"
    assert argv[argv.index("--task") + 1] == "1"  # train the hash functions, then test
    assert argv[argv.index("--dataset") + 1] == "mirflickr"  # its MultiStep schedule


def test_shim_redirects_a_fixed_data_folder(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(
        "import pickle\n"
        "with open('/nonexistent/data/Dataset/x/train.pkl', 'rb') as f:\n"
        "    d = pickle.load(f)\n"
        "open('ran', 'w').write(str(d['n']))\n"
    )
    data = tmp_path / "data" / "x"
    data.mkdir(parents=True)
    (data / "train.pkl").write_bytes(pickle.dumps({"n": 7}))
    work = tmp_path / "work"
    work.mkdir()
    shim = REPO / "benchmarks/official/_shim.py"
    redirect = f"/nonexistent/data/Dataset/={tmp_path / 'data'}/"
    cmd = [sys.executable, str(shim), "--cwd", str(work), "--redirect", redirect, str(script)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (work / "ran").read_text() == "7"
    assert "/nonexistent/data/Dataset/" in res.stderr  # the redirect is reported
