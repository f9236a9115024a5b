"""Official protocols as configuration: the split rows, the database and the noise draw
that reproduce the UCCH and RSHNL official codes, on small fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from xmhash.codes import Codes, make_codeset, save_codes
from xmhash.data import noise
from xmhash.data.splits import SplitError, make_split, split_features
from xmhash.evaluate import evaluate_run
from xmhash.features.store import Features, write_features

REPO = Path(__file__).resolve().parents[1]


def _mat_files(tmp_path, n, rng):
    from dataset_fixtures import mat_bytes

    x, y = rng.random((n, 8)), (rng.random((n, 20)) < 0.2).astype(np.float64)
    lab = (rng.random((n, 6)) < 0.4).astype(np.float64)
    lab[lab.sum(1) == 0, 0] = 1
    opts = {}
    for part, key, arr in (("image", "XAll", x), ("text", "YAll", y), ("label", "LAll", lab)):
        (tmp_path / f"{part}.mat").write_bytes(mat_bytes({key: arr}))
        opts.update({f"{part}_mat": str(tmp_path / f"{part}.mat"), f"{part}_key": key})
    return opts


def test_dcmh_mat_official_split_is_ucchs_rows(tmp_path, rng):
    """UCCH: the last Q rows query, every other row trains, the first V of those select."""
    from xmhash.data.datasets import dcmh_mat

    opts = _mat_files(tmp_path, 40, rng)
    dcmh_mat.import_features({}, tmp_path / "f.h5", {**opts, "official_query": 10})
    splits = [
        split_features(
            tmp_path / "f.h5",
            tmp_path / f"s{seed}.npz",
            seed=seed,
            query=10,
            train="all",
            val=8,
            official=True,
            val_from="train",
        )
        for seed in (0, 1)
    ]
    for sp in splits:
        np.testing.assert_array_equal(sp.query, np.arange(30, 40))
        np.testing.assert_array_equal(sp.database, np.arange(30))
        np.testing.assert_array_equal(sp.train, np.arange(30))  # all retrieval items train
        np.testing.assert_array_equal(sp.val, np.arange(8))  # ... and the first 8 select
        assert sp.meta["val_from"] == "train"


def test_dcmh_mat_official_query_must_fit(tmp_path, rng):
    from xmhash.data.datasets import DatasetError, dcmh_mat

    opts = _mat_files(tmp_path, 12, rng)
    with pytest.raises(DatasetError, match="official_query=12 must be between 1"):
        dcmh_mat.import_features({}, tmp_path / "f.h5", {**opts, "official_query": 12})


def test_rshnl_mat_official_split_keeps_train_and_val_rows(tmp_path, rng):
    """RSHNL: train = the *_tr_* rows, val = the first test rows, query = the rest, for
    every seed (nothing is redrawn)."""
    from dataset_fixtures import mat_bytes

    from xmhash.data.datasets import rshnl_mat

    arrays = {
        "I_tr_CNN": rng.random((30, 8)),
        "T_tr_BOW": rng.random((30, 6)),
        "trImgCat": rng.integers(1, 6, (30, 1)),
        "I_te_CNN": rng.random((14, 8)),
        "T_te_BOW": rng.random((14, 6)),
        "teImgCat": rng.integers(1, 6, (14, 1)),
    }
    arrays["trImgCat"][0] = 5
    (tmp_path / "x.mat").write_bytes(mat_bytes(arrays))
    opts = {"mat": str(tmp_path / "x.mat"), "format": "xmedia", "val_rows": 6}
    rshnl_mat.import_features({}, tmp_path / "f.h5", opts)
    for seed in (0, 3):
        sp = split_features(
            tmp_path / "f.h5",
            tmp_path / "s.npz",
            seed=seed,
            query=8,
            train="all",
            val=6,
            official=True,
        )
        np.testing.assert_array_equal(sp.train, np.arange(30))
        np.testing.assert_array_equal(sp.val, np.arange(30, 36))
        np.testing.assert_array_equal(sp.query, np.arange(36, 44))
        np.testing.assert_array_equal(sp.database, np.arange(36))


def test_official_rows_refuse_a_training_size():
    q = np.arange(8, 10)
    with pytest.raises(SplitError, match="split.train=5: the official split fixes 6"):
        make_split(
            10,
            query=2,
            train=5,
            val=2,
            seed=0,
            official_query=q,
            official_train=np.arange(6),
            official_val=np.arange(6, 8),
        )
    with pytest.raises(SplitError, match="val_from='query'"):
        make_split(10, query=2, train="all", val=2, seed=0, val_from="query")


def test_drawn_split_keeps_val_out_of_training():
    sp = make_split(50, query=10, train="all", val=5, seed=0)
    assert not np.intersect1d(sp.val, sp.train).size
    assert len(sp.train) == 35


def _official_map(q, db, q_labels, db_labels):
    """The RSHNL/UCCH reference: mAP@all over the whole ranking by Hamming distance."""
    dist = (q[:, None, :] != db[None, :, :]).sum(-1)
    aps = []
    for i in range(len(q)):
        rel = (db_labels[np.argsort(dist[i], kind="stable")] @ q_labels[i]) > 0
        if rel.sum():
            prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
            aps.append(float((prec * rel).sum() / rel.sum()))
    return float(np.mean(aps))


def test_query_set_database_ranks_the_queries_themselves(tmp_path, rng):
    """database: query scores the queries against their own codes (RSHNL lineage), which
    differs from ranking the split's database; both match the reference computation."""
    bits, n = 64, 60  # 64 bits: distinct distances are likely, so ties barely matter
    labels = np.zeros((n, 4), np.uint8)
    labels[np.arange(n), rng.integers(0, 4, n)] = 1
    write_features(
        tmp_path / "f.h5",
        Features(
            ids=np.array([f"{i}" for i in range(n)]),
            labels=labels,
            label_names=list("abcd"),
            image=rng.random((n, 3), dtype=np.float32),
            text=rng.random((n, 3), dtype=np.float32),
        ),
    )
    codes = np.where(rng.random((n, bits)) < 0.5, 1, -1)
    codes[:, :6] = labels @ rng.choice([-1, 1], (4, 6))  # some label signal
    txt = np.where(rng.random((n, bits)) < 0.1, -codes, codes)
    qi, di = np.arange(40, 60), np.arange(40)
    save_codes(
        tmp_path / "c.h5",
        Codes(
            bits=bits,
            query=make_codeset(codes[qi], txt[qi], qi.astype(str), qi),
            database=make_codeset(codes[di], txt[di], di.astype(str), di),
            attrs={"method": "x", "seed": 0},
        ),
    )
    res = {
        db: evaluate_run(
            codes=str(tmp_path / "c.h5"),
            features=str(tmp_path / "f.h5"),
            out=str(tmp_path / f"{db}.json"),
            ks=(),
            pn=(),
            tie_seed=0,
            database=db,
        )
        for db in ("query", "retrieval")
    }
    assert res["query"]["protocol"]["database"] == "query"
    own = res["query"]["tasks"]["i2t"]
    assert own["map@all_tie_aware"] == pytest.approx(
        _official_map(codes[qi], txt[qi], labels[qi], labels[qi]), abs=0.02
    )
    retr = res["retrieval"]["tasks"]["i2t"]
    assert retr["map@all_tie_aware"] == pytest.approx(
        _official_map(codes[qi], txt[di], labels[qi], labels[di]), abs=0.02
    )
    assert own["map@all"] != pytest.approx(retr["map@all"], abs=1e-6)
    with pytest.raises(ValueError, match="evaluation.database='both'"):
        evaluate_run(
            codes=str(tmp_path / "c.h5"),
            features=str(tmp_path / "f.h5"),
            out=str(tmp_path / "x.json"),
            ks=(),
            pn=(),
            tie_seed=0,
            database="both",
        )


def test_symall_is_the_official_draw(rng):
    """The official get_noisylabels: floor(r N) rows are drawn; each gets a class uniform
    over ALL C classes, its own included; the other rows keep their label."""
    c, n, rate = 5, 20000, 0.4
    clean = np.zeros((n, c), np.uint8)
    clean[np.arange(n), rng.integers(0, c, n)] = 1
    nl = noise.make_noisy(clean, np.arange(n), "symall", rate, seed=7)
    assert nl.selected.sum() == int(rate * n)
    np.testing.assert_array_equal(nl.labels[~nl.selected], clean[~nl.selected])
    new = nl.labels[nl.selected].argmax(1)
    kept = (new == clean[nl.selected].argmax(1)).mean()
    assert kept == pytest.approx(1 / c, abs=0.015)  # the true class comes back 1/C
    counts = np.bincount(new, minlength=c) / len(new)
    np.testing.assert_allclose(counts, 1 / c, atol=0.015)


def _paper(name):
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    over = yaml.safe_load((REPO / f"config/paper/{name}.yaml").read_text())
    return base, over


def test_rshnl_paper_config_is_the_official_protocol():
    _, cfg = _paper("rshnl")
    assert cfg["noise"]["kinds"] == ["symall"]
    assert cfg["evaluation"]["database"] == "query"
    assert cfg["training"]["select"] == cfg["noise"]["select"] == "val"
    r = cfg["methods"]["rshnl"]
    assert (r["epochs"], r["batch_size"], r["lr"], r["hidden"], r["tp"]) == (
        150,
        256,
        1e-4,
        4096,
        5,
    )
    xm = cfg["datasets"]["xmedia_features"]
    assert xm["source"] == "rshnl_mat" and xm["format"] == "xmedia"
    assert xm["split"]["official"] and xm["split"]["val"] == 500
    assert cfg["noise"]["overrides"]["xmedia"]["rshnl"] == {"alpha": 0.1, "gamma": 5.0}


def _merged(name):
    """config.yaml with the paper config merged in, as snakemake's --configfile does."""

    def merge(base, over):
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            out[key] = merge(base[key], value) if both else value
        return out

    return merge(*_paper(name))


def test_rshnl_paper_values_reach_every_dataset_of_their_benchmark():
    """Wikipedia's alpha and gamma reach the archive's `wikipedia` dataset as much as the
    RSHNL-style `wiki_features` file; neither runs with XMedia's values."""
    from xmhash import plan

    cfg = _merged("rshnl")
    plan.check_per_dataset_keys(cfg)
    noisy = ("noise", "overrides")
    for dataset in ("wikipedia", "wiki_features"):
        assert plan.dataset_entry(cfg, noisy, dataset)["rshnl"] == {"alpha": 0.05, "gamma": 3.0}
    for dataset in ("xmedia", "xmedia_features", "xmedia_like"):
        assert plan.dataset_entry(cfg, noisy, dataset)["rshnl"] == {"alpha": 0.1, "gamma": 5.0}
    assert plan.dataset_entry(cfg, noisy, "inria_features")["rshnl"]["gamma"] == 8.0
    assert plan.dataset_entry(cfg, noisy, "xmedianet_features")["rshnl"]["gamma"] == 9.0


def test_ucch_paper_config_is_the_official_protocol():
    _, cfg = _paper("ucch")
    assert cfg["evaluation"]["database"] == "retrieval"
    assert cfg["training"]["select"] == "val"
    u = cfg["methods"]["ucch"]
    assert (u["epochs"], u["hidden"], u["alpha"], u["negatives"], u["warmup_epochs"]) == (
        20,
        8192,
        0.7,
        4096,
        1,
    )
    mat = cfg["datasets"]["mirflickr25k_mat"]
    assert mat["official_query"] == 2000
    assert mat["split"] == {
        "query": 2000,
        "train": "all",
        "val": 2000,
        "official": True,
        "val_from": "train",
    }


def test_harness_runs_and_scores_our_side_on_the_official_layout(tmp_path):
    """Our half of a side-by-side run (official layout written, imported, split, noisy
    labels drawn, trained, exported, scored) on a tiny INRIA-layout set, one epoch: the
    harness calls the train stage's API, so a change of that API shows up here."""
    import argparse

    sys.path.insert(0, str(REPO / "benchmarks/official"))
    import _harness as H
    import rshnl

    args = argparse.Namespace(
        layout="INRIA-Websearch",
        class_base=1,
        n_train=24,
        n_val=10,
        n_test=12,
        image_dim=8,
        text_dim=6,
        rate=0.2,
        epochs=1,
        device="cpu",
        threads=1,
    )
    work = tmp_path / "seed0"
    case = H.Case.in_folder(work, seed=0, bits=8, config=H.paper_config("rshnl"), args=args)
    case.official_dir.mkdir(parents=True)
    rshnl.SPEC.write_data(case)
    assert (case.official_dir / "datasets/INRIA-Websearch.mat").exists()
    codes, _ = H.run_ours(rshnl.SPEC, case)
    scores = H.score(case, codes, "ours")
    assert set(scores) == set(H.TASKS) and all(0 < v <= 1 for v in scores.values())


def test_shim_runs_a_cuda_script_on_the_cpu_and_captures_its_last_calls(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(
        "import numpy as np, torch\n"
        "from torchvision import transforms\n"  # an unused import: inert when missing
        "def score(image, text, label):\n    return 0.0\n"
        "x = torch.ones(3, 2).cuda()\n"
        "for k in range(3):\n    score(x.cpu().numpy() * k, torch.zeros(2), np.arange(3))\n"
        "open('ran', 'w').write(str(np.zeros(2, dtype=np.float).dtype))\n"  # a removed alias
    )
    work = tmp_path / "work"
    work.mkdir()
    shim = REPO / "benchmarks/official/_shim.py"
    out = tmp_path / "cap.npz"
    cmd = [
        sys.executable,
        str(shim),
        "--cwd",
        str(work),
        "--capture",
        "score",
        "--capture-out",
        str(out),
        str(script),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (work / "ran").read_text() == "float64"
    with np.load(out) as z:
        assert sorted(z.files) == sorted(
            f"call{i}_{k}" for i in (0, 1) for k in ("image", "text", "label")
        )
        np.testing.assert_array_equal(z["call0_image"], np.ones((3, 2)))  # k = 1
        np.testing.assert_array_equal(z["call1_image"], 2 * np.ones((3, 2)))  # the last call
        np.testing.assert_array_equal(z["call1_text"], np.zeros(2))  # a tensor argument


# methods whose official code the paper configs reproduce, and which feed it raw features
RAW_INPUTS = ("ucch", "cirh", "daeh", "ucmfh", "djsrh", "jdsh", "dgcpn", "rshnl")


@pytest.mark.parametrize("paper", ["cirh", "dgcpn", "rshnl", "ucch", "ucmfh", "vtmuch"])
def test_paper_configs_feed_the_features_raw_as_the_official_codes(paper):
    """No paper config centres (centre_inputs: auto centres the paper's own non-negative
    VGG fc7 / BoW features) or rescales (unit_inputs) the inputs of a method whose
    official code takes them raw, on any dataset of the config."""
    from xmhash.methods import get_method, method_config

    cfg = _merged(paper)
    methods = {*cfg["run"]["methods"], *cfg.get("noise", {}).get("methods", [])}
    checked = 0
    for name in sorted(methods & set(RAW_INPUTS)):
        fields = get_method(name).Params.__dataclass_fields__
        for dataset in cfg["datasets"]:
            params = method_config(cfg, dataset, name)
            if "centre_inputs" in fields:
                assert params.get("centre_inputs") == "never", (paper, dataset, name)
                checked += 1
            if "unit_inputs" in fields:
                assert params.get("unit_inputs") is False, (paper, dataset, name)
                checked += 1
    assert checked or paper == "rshnl"  # RSHNL's networks have no input transform


def test_auto_centring_moves_non_negative_features_and_leaves_signed_ones():
    """Why the paper configs say never: on non-negative (VGG fc7-like) features auto
    subtracts a mean, on signed (CLIP-like) ones it is never exactly."""
    import torch

    from xmhash.methods.inputs import InputCentre

    g = torch.Generator().manual_seed(0)
    fc7 = torch.relu(torch.randn(200, 16, generator=g))
    clip = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=1)
    for features, moved in ((fc7, True), (clip, False)):
        auto, never = InputCentre(features.shape[1], 8), InputCentre(features.shape[1], 8)
        auto.fit(features, clip, "auto", "m")
        never.fit(features, clip, "never", "m")
        same = torch.equal(auto(features, "image"), never(features, "image"))
        assert same is not moved
        assert torch.equal(auto(clip, "text"), clip)
