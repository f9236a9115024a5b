"""The common harness pieces without the official checkouts: the paired standard error,
the seed count rule, all.py's table, and ``--features`` in every harness (a tiny folder
of the Wikipedia layout becomes each official layout, queries from its test part)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from xmhash.features.store import read_features, read_official_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks/official"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"official_{name}", REPO / f"benchmarks/official/{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ALL = _load("all")
H = ALL.H
N_TRAIN, N_TEST, CLASSES = 2100, 30, 4


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    """A folder of the Wikipedia layout: raw_features.mat and the two lists."""
    folder = tmp_path_factory.mktemp("wiki")
    rng = np.random.default_rng(0)
    mat = {}
    for part, n in (("tr", N_TRAIN), ("te", N_TEST)):
        mat[f"I_{part}"] = rng.random((n, 6))
        mat[f"T_{part}"] = rng.random((n, 3))
        cls = np.arange(n) % CLASSES + 1
        name = {"tr": "trainset", "te": "testset"}[part]
        lines = [f"t{part}{i}\ti{part}{i}\t{c}" for i, c in enumerate(cls)]
        lines[0] = "A" + lines[0]  # the published list's stray leading "A"
        (folder / f"{name}_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    sio.savemat(folder / "raw_features.mat", mat)
    return folder


def test_paired_standard_error():
    ours, off = [0.70, 0.72, 0.69, 0.71], [0.69, 0.70, 0.70, 0.70]
    mean, se = H.paired(ours, off)
    d = np.array([0.01, 0.02, -0.01, 0.01])
    assert mean == pytest.approx(d.mean())
    assert se == pytest.approx(d.std(ddof=1) / 2)  # std / sqrt(4)
    assert np.isnan(H.paired([0.5], [0.4])[1])  # one seed: no spread
    # n >= (sd / 0.004)^2: the recorded spreads give the documented seed counts
    assert [H.seeds_for(s) for s in (0.0151, 0.0179, 0.014, 0.009, 0.0031)] == [15, 21, 13, 6, 2]


def test_all_table_from_results():
    res = [
        {
            "seed": s,
            "bits": 16,
            "features": "real",
            "ours": {"i2t": 0.5 + 0.005 * s, "t2i": 0.4},
            "official": {"i2t": 0.5, "t2i": 0.43},
        }
        for s in range(3)
    ]
    rows = ALL.summary("ucch", res)
    i2t, t2i = rows
    assert (i2t["task"], i2t["seeds"], i2t["features"]) == ("i2t", 3, "real")
    assert i2t["diff"] == pytest.approx(0.005)
    assert i2t["se"] == pytest.approx(0.005 / np.sqrt(3))
    assert (i2t["within"], t2i["within"]) == ("yes", "no")
    assert ALL.verdict(0.0, 0.005).startswith("undecided")
    assert ALL.verdict(0.0, float("nan")).startswith("undecided")
    text = ALL.render(rows)
    assert "| ucch | 16 | real | i2t | 3 | 0.5050 | 0.5000 | +0.0050 ± 0.0029 | yes |" in text
    assert "| ucch | 16 | real | t2i | 3 | 0.4000 | 0.4300 | -0.0300 ± 0.0000 | no |" in text


def test_all_passes_features_and_quick(tmp_path):
    cmd = ALL.harness_command("rshnl", tmp_path, tmp_path / "w", tmp_path / "wiki", True, 1)
    assert cmd[cmd.index("--official") + 1] == str(tmp_path / "RSHNL")
    assert cmd[-2:] == ["--features", str(tmp_path / "wiki")]
    assert "--epochs" in cmd and cmd[cmd.index("--threads") + 1] == "1"
    assert "--features" not in ALL.harness_command("ucch", tmp_path, tmp_path, None, False, 1)


def test_real_rows_take_queries_from_the_test_part(wiki):
    parts = H.read_wiki_layout(wiki)
    assert parts["train"].labels.shape == (N_TRAIN, CLASSES)
    assert parts["train"].labels[0].argmax() == 0  # class 1 of the first ("A"-prefixed) line
    head, tr_q, te_q = H.real_rows(N_TRAIN, N_TEST, 50, 40, seed=1)
    assert (len(head), len(tr_q), len(te_q)) == (50, 10, 30)
    assert not set(head) & set(tr_q)
    with pytest.raises(SystemExit, match="lower the sizes"):
        H.real_rows(N_TRAIN, N_TEST, N_TRAIN, 40, seed=1)
    with pytest.raises(SystemExit, match="raw_features.mat missing"):
        H.read_wiki_layout(wiki.parent)


HARNESSES = {  # harness -> sizes for the fixture
    "ucch": {"n_train": 64, "n_test": 2000, "image_dim": 6, "text_dim": 3},
    "rshnl": {
        **{"n_train": 40, "n_val": 10, "n_test": 20, "image_dim": 6, "text_dim": 3},
        **{"layout": "INRIA-Websearch", "class_base": 1, "rate": 0.2},
    },
    "ucmfh": {"n_train": 128, "n_database": 256, "n_test": 128, "image_dim": 512, "text_dim": 512},
    "cirh": {"n_train": 6, "n_database": 10, "n_test": 4, "image_dim": 12, "text_dim": 9},
    "dgcpn": {"n_train": 6, "n_val": 3, "n_test": 4, "image_dim": 4096, "text_dim": 5},
}


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_every_harness_accepts_real_features(name, wiki, tmp_path):
    mod = _load(name)
    args = argparse.Namespace(epochs=None, features=wiki, **HARNESSES[name])
    work = tmp_path / "seed2"
    (work / "official").mkdir(parents=True)
    case = H.Case.in_folder(
        work, seed=2, bits=16, config=H.paper_config(mod.SPEC.method), args=args
    )
    mod.SPEC.write_data(case)
    feats = read_features(case.features)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731 (DGCPN scales)
    test = unit(sio.loadmat(wiki / "raw_features.mat")["I_te"])

    def in_test(rows):
        return [np.isclose(test, r, atol=1e-5).all(1).any() for r in unit(feats.image[rows, :6])]

    where = read_official_split(case.features)
    query = np.flatnonzero(where == "query")
    train = np.flatnonzero(np.isin(where, ["train", "database"]))
    # the last query items are the folder's test items (zero-padded to an official width),
    # and no training or database item is one (RSHNL's validation items are test items)
    assert all(in_test(query[-min(len(query), N_TEST) :]))
    assert len(train) and not any(in_test(train))
    assert not feats.image[:, 6:].any()
    assert feats.labels.shape[1] == CLASSES
