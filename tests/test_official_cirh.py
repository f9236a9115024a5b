"""The CIRH side-by-side harness without the official checkout: the paper config is the
official protocol, the official file layout holds the rows of our feature file in the
same order, and the captured official test codes land on the right rows."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from xmhash.bits import unpack
from xmhash.data.splits import split_features
from xmhash.features.store import read_features, read_official_split
from xmhash.methods.cirh import CIRHParams
from xmhash.plan import method_config

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sys.path.insert(0, str(REPO / "benchmarks/official"))
official = _load("official_cirh", REPO / "benchmarks/official/cirh.py")
H = official.H


@pytest.fixture(scope="module")
def config():
    return H.paper_config("cirh")


def _case(tmp_path, config, **sizes):
    a = {"n_train": 6, "n_database": 10, "n_test": 4, "image_dim": 12, "text_dim": 9}
    a.update(sizes)
    args = argparse.Namespace(epochs=None, **a)
    work = tmp_path / "seed3"
    (work / "official").mkdir(parents=True)
    return H.Case.in_folder(work, seed=3, bits=16, config=config, args=args)


def test_paper_config_is_the_official_protocol(config):
    """main_mir.py's defaults and models.py's widths, selection at the last epoch."""
    p = method_config(config, "mirflickr25k", "cirh")
    assert {k: p[k] for k in official.OFFICIAL} == official.OFFICIAL
    assert (p["epochs"], p["batch_size"], p["lr_method"], p["lr_hash"]) == (60, 512, 1e-3, 1e-4)
    assert (p["lambda1"], p["lambda2"], p["beta"], p["a1"], p["a2"]) == (10, 1, 0.01, 0.6, 0.6)
    assert (p["width"], p["image_hidden"], p["text_hidden"]) == (512, 4096, 0)
    assert official.official_k(p["zero_fraction"], 5000) == 3000  # --K 3000 of 5,000
    assert p["centre_inputs"] == "never"
    assert config["training"]["select"] == "paper"  # never the official test-set choice
    assert config["evaluation"]["database"] == "retrieval"
    assert config["datasets"]["mirflickr25k"]["split"] == {"query": 2000, "train": 5000, "val": 0}
    assert official.OFFICIAL_SPLIT == {"query": 2000, "database": 18015, "train": 5000}
    nus = method_config(config, "nuswide", "cirh")  # main_nus.py
    assert (nus["epochs"], nus["lr_method"], nus["a1"], nus["a2"]) == (120, 1e-4, 0.5, 0.5)
    assert official.official_k(nus["zero_fraction"], 5000) == 3300
    coco = method_config(config, "coco2014", "cirh")  # main_coco.py
    assert (coco["epochs"], coco["lr_hash"], coco["a1"], coco["a2"]) == (100, 5e-4, 0.1, 0.3)
    # the method's defaults are the MIRFlickr values too
    d = CIRHParams()
    assert (d.epochs, d.batch_size, d.image_hidden, d.lr_method, d.lr_hash) == (
        60,
        512,
        4096,
        1e-3,
        1e-4,
    )


def test_layout_round_trips_to_our_rows_and_split(tmp_path, config):
    """What get_loader_flickr reads = our feature file's rows, in the same order, and our
    split's query / database / training rows = the official files' parts."""
    case = _case(tmp_path, config)
    official.write_data(case)
    feats = read_features(case.features)
    rows = official.layout(6, 10, 4)
    folder = case.official_dir / official.FOLDER
    for part, (fname, ik, tk, lk) in official.FILES.items():
        mat = sio.loadmat(folder / fname)
        assert mat[ik].dtype == mat[tk].dtype == np.float32
        # the loader: np.array(set[key], dtype=np.float)
        np.testing.assert_array_equal(np.array(mat[ik], float), feats.image[rows[part]])
        np.testing.assert_array_equal(np.array(mat[tk], float), feats.text[rows[part]])
        np.testing.assert_array_equal(mat[lk], feats.labels[rows[part]])
    where = read_official_split(case.features)
    assert list(where) == ["train"] * 6 + ["database"] * 4 + ["query"] * 4
    sp = split_features(case.features, tmp_path / "s.npz", seed=case.seed, **case.extra["split"])
    np.testing.assert_array_equal(sp.query, np.arange(10, 14))
    np.testing.assert_array_equal(sp.database, np.arange(10))
    np.testing.assert_array_equal(sp.train, np.arange(6))  # mir_train.mat's rows and order
    assert len(sp.val) == 0
    assert case.extra["database"] == "retrieval"
    assert (folder.parent.parent / "logs").is_dir()  # utils.logger writes ./logs/<name>.txt
    assert (folder.parent.parent / "checkpoints").is_dir()  # save_checkpoints


def test_official_arguments(tmp_path, config):
    case = _case(tmp_path, config, n_train=1024, n_database=2048, text_dim=512)
    argv = official.official_argv(case)
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    assert opts["--TRAIN"] == "True"  # type=bool: any non-empty string trains
    assert opts["--K"] == str(round(0.6 * 1024))
    assert (opts["--NUM_EPOCH"], opts["--BATCH_SIZE"], opts["--EVAL_INTERVAL"]) == (
        "60",
        "512",
        "10",
    )
    assert (opts["--LR_MyNet"], opts["--LR_IMG"], opts["--LR_TXT"]) == ("0.001",) + ("0.0001",) * 2
    assert (opts["--SEED"], opts["--GPU_ID"], opts["--HASH_BIT"]) == ("3", "-1", "16")
    with pytest.raises(SystemExit, match="at least the batch size"):
        official.official_argv(_case(tmp_path / "b", config, n_train=500, text_dim=512))
    with pytest.raises(SystemExit, match="--text-dim >= 512"):
        official.official_argv(_case(tmp_path / "c", config, n_train=1024, text_dim=64))


def test_captured_calls_become_the_official_codes(tmp_path, config):
    """performance_eval's two calculate_top_map calls (keyword arguments), through the shim:
    I->T gives the query image and database text codes, T->I the other two."""
    case = _case(tmp_path, config)
    official.write_data(case)
    rng = np.random.default_rng(0)
    codes = {k: np.where(rng.random((n, 16)) < 0.5, -1.0, 1.0) for k, n in
             (("qi", 4), ("qt", 4), ("di", 10), ("dt", 10))}  # fmt: skip
    np.savez(tmp_path / "codes.npz", **codes)
    script = tmp_path / "fake_main.py"
    script.write_text(
        "import numpy as np\n"
        "def calculate_top_map(qu_B, re_B, qu_L, re_L, topk):\n    return 0.0\n"
        f"c = np.load({str(tmp_path / 'codes.npz')!r})\n"
        "L = np.ones((4, 3)); R = np.ones((10, 3))\n"
        "for epoch in range(2):\n"
        "    k = epoch  # the last evaluation is the one kept\n"
        "    calculate_top_map(qu_B=c['qi'] * (1 - 2 * (k == 0)), re_B=c['dt'], qu_L=L, "
        "re_L=R, topk=50)\n"
        "    calculate_top_map(qu_B=c['qt'], re_B=c['di'], qu_L=L, re_L=R, topk=50)\n"
    )
    out = tmp_path / "cap.npz"
    cmd = [sys.executable, str(H.SHIM), "--cwd", str(tmp_path), "--capture"]
    cmd += ["calculate_top_map", "--capture-out", str(out), str(script)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with np.load(out) as z:
        got = official.official_codes(case, {k: z[k] for k in z.files})
    ids = read_features(case.features).ids
    np.testing.assert_array_equal(got.query.index, np.arange(10, 14))
    np.testing.assert_array_equal(got.database.index, np.arange(10))
    np.testing.assert_array_equal(got.query.ids, ids[10:14])
    for cs, mod, key in (
        (got.query, "image", "qi"),
        (got.query, "text", "qt"),
        (got.database, "image", "di"),
        (got.database, "text", "dt"),
    ):
        np.testing.assert_array_equal(unpack(getattr(cs, mod), 16), codes[key])
