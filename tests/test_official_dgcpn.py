"""The DGCPN paper config and side-by-side harness, without the official checkout: the
protocol values are the official ones, and the files the official loader reads hold the
rows of our feature file, in our split's order."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "official"))

import _harness as H  # noqa: E402
import dgcpn as harness  # noqa: E402

from xmhash.data.splits import split_features  # noqa: E402
from xmhash.features.store import read_features  # noqa: E402
from xmhash.methods.dgcpn import DGCPNParams  # noqa: E402

# load_data.get_loader(data_name): <root>/<data_name>/<data_name>_vgg19.npy, tags.npy,
# label.npy and the row indices of each part (official code at 9f62c56)
LOADER_FILES = ("test_num.npy", "val_num.npy", "train_num.npy", "database_num.npy")


def test_paper_config_is_the_official_protocol():
    cfg = H.paper_config("dgcpn")
    assert cfg["evaluation"]["database"] == "retrieval"
    assert cfg["training"]["select"] == "val"
    p = cfg["methods"]["dgcpn"]
    # train.py's argument defaults and models.py's fixed layers
    official = {
        "epochs": 100,
        "batch_size": 32,
        "lr": 0.005,
        "weight_decay": 0.0005,
        "momentum": 0.9,
        "k_pair": 1.5,
        "dis_weight": 1.0,
        "cons_weight": 1.0,
        "a1": 0.01,
        "a2": 0.3,
        "hidden": 4096,
        "dropout": 0.5,
        "text_init_std": 0.3,
        "half_binary": True,
        "unit_inputs": False,
    }
    assert {k: p[k] for k in official} == official
    DGCPNParams.from_config(p, "methods.dgcpn")
    # at the paper's 5,000 training items our relative kNN size and scale are the
    # official knn_number 3,000 (entries dropped) and scale 4,000
    assert harness.official_knn(p, 5000) == (3000, 4000.0)
    for name in ("mirflickr25k", "nuswide"):
        split = cfg["datasets"][name]["split"]
        assert (split["query"], split["train"], split["val_from"]) == (2000, 5000, "database")


def _case(tmp_path, seed=3, **sizes):
    args = argparse.Namespace(
        n_test=sizes.get("n_test", 7),
        n_val=sizes.get("n_val", 5),
        n_train=sizes.get("n_train", 19),
        image_dim=4096,
        text_dim=12,
        epochs=None,
    )
    work = tmp_path / "work"
    (work / "official").mkdir(parents=True)
    return H.Case.in_folder(work, seed=seed, bits=16, config=H.paper_config("dgcpn"), args=args)


def test_layout_writer_round_trips_to_our_feature_file_and_split(tmp_path):
    case = _case(tmp_path)
    harness.write_data(case)
    folder = case.official_dir / "dataset" / "flickr"
    images = np.load(folder / "flickr_vgg19.npy").astype(np.float32)
    tags = np.load(folder / "tags.npy").astype(np.float32)
    labels = np.load(folder / "label.npy").astype(int)
    q, v, t, d = (np.load(folder / f) for f in LOADER_FILES)
    assert images.shape == (31, 4096) and tags.shape == (31, 12)
    assert len(q) == 7 and len(v) == 5 and len(t) == 19 and len(d) == 24
    assert len(np.intersect1d(q, d)) == 0 and set(t) | set(v) <= set(d)
    assert not set(t) & set(v) and not np.array_equal(q, np.arange(7))  # drawn, not leading

    ours = read_features(case.features)
    split = split_features(case.features, tmp_path / "split.npz", seed=0, **case.extra["split"])
    for official_rows, part in ((q, "query"), (v, "val"), (t, "train"), (d, "database")):
        rows = getattr(split, part)
        np.testing.assert_array_equal(rows, official_rows)  # same rows, same order
        np.testing.assert_array_equal(ours.image[rows], images[official_rows])
        np.testing.assert_array_equal(ours.text[rows], tags[official_rows])
        np.testing.assert_array_equal(ours.labels[rows], labels[official_rows])
    # another seed draws other rows
    other = _case(tmp_path / "b", seed=4)
    harness.write_data(other)
    q4 = np.load(other.official_dir / "dataset" / "flickr" / "test_num.npy")
    assert not np.array_equal(q, q4)


def test_layout_writer_refuses_an_image_width_the_official_net_cannot_take(tmp_path):
    case = _case(tmp_path)
    case.args.image_dim = 512
    with pytest.raises(SystemExit, match="--image-dim 4096"):
        harness.write_data(case)


def test_official_argv_passes_the_paper_values_and_the_knn_of_the_training_size(tmp_path):
    case = _case(tmp_path, n_train=100)
    argv = harness.official_argv(case)
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    assert opts["--num_epochs"] == "100" and opts["--batch_size"] == "32"
    assert opts["--learning_rate"] == "0.005" and opts["--bit"] == "16"
    assert (opts["--knn_number"], opts["--scale"]) == ("60", "80.0")  # k = 40 of 100


def test_official_codes_are_the_last_two_calculate_map_calls(tmp_path):
    case = _case(tmp_path)
    harness.write_data(case)
    rows = case.extra["rows"]
    nq, nd = len(rows["query"]), len(rows["database"])
    rng = np.random.default_rng(0)
    arrays = {
        f"call{i}_{k}": np.sign(rng.standard_normal((n, 16))).astype(np.float32)
        for i in (0, 1)
        for k, n in (("qu_B", nq), ("re_B", nd))
    }
    codes = harness.official_codes(case, arrays)
    np.testing.assert_array_equal(codes.query.index, rows["query"])
    np.testing.assert_array_equal(codes.database.index, rows["database"])
    # I->T: query images vs retrieval texts; T->I: query texts vs retrieval images
    for which, modality, key in (
        ("query", "image", "call0_qu_B"),
        ("database", "text", "call0_re_B"),
        ("query", "text", "call1_qu_B"),
        ("database", "image", "call1_re_B"),
    ):
        got = codes.unpacked(which, modality)
        np.testing.assert_array_equal(got > 0, arrays[key] > 0, err_msg=f"{which} {modality}")


def test_shim_maps_a_fixed_absolute_data_path(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", np.arange(3))
    script = tmp_path / "s.py"
    script.write_text(
        "import numpy as np\nprint('read', np.load('/media/nobody/dataset/x.npy').sum())\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "official" / "_shim.py"),
            "--cwd",
            str(tmp_path),
            "--redirect",
            f"/media/nobody/dataset/={tmp_path / 'data'}/",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "read 3" in out.stdout
