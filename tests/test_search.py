"""Search: the index backends, the Python API and the CLI on a small demo run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_workflow, snakemake

from xmhash.bits import pack
from xmhash.cli import main as cli
from xmhash.metrics import hamming
from xmhash.search import Searcher, SearchError
from xmhash.search.index import build_index

RUN = "results/demo/cca_itq/{bits}bits/seed0"


def random_packed(rng, n: int, bits: int) -> np.ndarray:
    return pack(rng.integers(0, 2, size=(n, bits)))


# --------------------------------------------------------------------------- index


@pytest.mark.parametrize("bits", [16, 64, 128])
def test_exact_index_equals_a_stable_sort_of_all_distances(rng, bits):
    db, q = random_packed(rng, 700, bits), random_packed(rng, 13, bits)
    dist, idx = build_index(db, bits).search(q, 25)
    full = hamming(q, db).astype(np.int64)
    ref = np.argsort(full, axis=1, kind="stable")[:, :25]  # ties by database index
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(dist, np.take_along_axis(full, ref, axis=1))


def test_k_larger_than_the_database_returns_every_item(rng):
    db = random_packed(rng, 7, 32)
    dist, idx = build_index(db, 32).search(random_packed(rng, 2, 32), 50)
    assert idx.shape == (2, 7) and sorted(idx[0]) == list(range(7))


@pytest.mark.parametrize("bits", [64, 128])
def test_faiss_flat_agrees_with_exact(rng, bits):
    pytest.importorskip("faiss")
    db, q = random_packed(rng, 2000, bits), random_packed(rng, 20, bits)
    d_ex, i_ex = build_index(db, bits, "exact").search(q, 30)
    d_fl, i_fl = build_index(db, bits, "faiss-flat").search(q, 30)
    np.testing.assert_array_equal(d_fl, d_ex)
    for row in range(len(q)):  # the same items, but for ties at the k-th distance
        closer = d_ex[row] < d_ex[row, -1]
        assert set(i_fl[row][closer]) == set(i_ex[row][closer])


@pytest.mark.parametrize("backend", ["faiss-hash", "faiss-mih"])
def test_hashing_backends_return_true_distances_and_find_near_items(rng, backend):
    pytest.importorskip("faiss")
    bits = 64
    db = rng.integers(0, 2, size=(3000, bits))
    queries = db[:20].copy()
    queries[:, :2] ^= 1  # two flipped bits from a database item
    q = pack(queries)
    dist, idx = build_index(pack(db), bits, backend).search(q, 5)
    full = hamming(q, pack(db))
    found = idx >= 0
    rows = np.nonzero(found)
    np.testing.assert_array_equal(dist[found], full[rows[0], idx[found]])
    assert (idx[:, 0] == np.arange(20)).mean() >= 0.9  # the planted neighbour comes first


def test_index_rejects_codes_of_the_wrong_width(rng):
    index = build_index(random_packed(rng, 10, 32), 32)
    with pytest.raises(ValueError, match="expected \\(n, 4\\)"):
        index.search(random_packed(rng, 2, 64), 3)
    with pytest.raises(ValueError, match="unknown search backend"):
        build_index(random_packed(rng, 10, 32), 32, "annoy")


# --------------------------------------------------------------------------- a demo run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """A small demo workflow with cca_itq at 32 and 16 bits, exported."""
    wf = copy_workflow(tmp_path_factory.mktemp("search"))
    (wf / "overlay.yaml").write_text("run: {methods: [cca_itq], bits: [16, 32], seeds: [0]}\n")
    targets = [f"{RUN.format(bits=b)}/codes.h5" for b in (16, 32)]
    snakemake(
        wf, *targets, "--cores", "2", "--configfile", "tests/config/smoke.yaml", "overlay.yaml"
    )
    return wf


@pytest.fixture
def in_run(demo_run, monkeypatch) -> Path:
    monkeypatch.chdir(demo_run)
    return demo_run / RUN.format(bits=32)


def own_ranks(searcher: Searcher, hits_per_query, positions) -> np.ndarray:
    ids = searcher.codes.database.ids
    return np.array(
        [
            next(h.rank for h in hits if h.id == ids[p])
            for p, hits in zip(positions, hits_per_query, strict=True)
        ]
    )


@pytest.mark.workflow
def test_an_items_own_text_finds_its_image_near_the_top(in_run):
    s = Searcher(in_run)
    n = len(s.codes.database.ids)
    positions = np.arange(0, n, 7)[:60]
    hits = s.search_texts([s.texts[p] for p in positions], k=n)
    ranks = own_ranks(s, hits, positions)
    # random codes would put the own image at rank ~n/2
    assert np.median(ranks) <= 0.05 * n, ranks
    assert all(h.text and h.labels is not None for h in hits[0])


@pytest.mark.workflow
def test_same_modality_search_returns_the_item_itself_at_distance_zero(in_run):
    s = Searcher(in_run)
    hits = s.search_texts([s.texts[5]], k=10, same_modality=True)[0]
    assert hits[0].distance == 0
    assert s.codes.database.ids[5] in {h.id for h in hits if h.distance == 0}


@pytest.mark.workflow
def test_backends_agree_on_the_demo_run(in_run):
    pytest.importorskip("faiss")
    texts = list(Searcher(in_run).texts[:30])
    a = Searcher(in_run, backend="exact").search_texts(texts, k=20)
    b = Searcher(in_run, backend="faiss-flat").search_texts(texts, k=20)
    for ha, hb in zip(a, b, strict=True):
        assert [h.distance for h in ha] == [h.distance for h in hb]
        last = ha[-1].distance
        assert {h.id for h in ha if h.distance < last} == {h.id for h in hb if h.distance < last}


@pytest.mark.workflow
def test_cli_prints_json_and_a_table(in_run, capsys):
    text = Searcher(in_run).texts[3]
    assert cli(["search", str(in_run), "--text", text, "-k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["query"] == text and len(out[0]["hits"]) == 4
    assert {"rank", "distance", "id", "text", "labels"} <= set(out[0]["hits"][0])
    batch = in_run.parent / "queries.txt"
    batch.write_text(f"{text}\nanimals\n")
    assert cli(["search", str(in_run), "--batch", str(batch), "-k", "2"]) == 0
    table = capsys.readouterr().out
    assert table.count("query:") == 2 and "dist" in table


# --------------------------------------------------------------------------- bad input


@pytest.mark.workflow
def test_a_run_without_exported_codes_is_a_clear_error(in_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(in_run / "model.pt", run / "model.pt")
    with pytest.raises(Exception, match="no exported codes .* run the export stage"):
        Searcher(run)


@pytest.mark.workflow
def test_codes_and_model_with_different_bits_are_refused(in_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(in_run, run)
    shutil.copy(in_run.parent.parent / "16bits/seed0/codes.h5", run / "codes.h5")
    with pytest.raises(SearchError, match="32 bits but codes.h5 holds 16-bit"):
        Searcher(run, features=in_run.parents[3] / "features/synthetic.h5")


@pytest.mark.workflow
def test_an_unreadable_image_is_named(in_run, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SearchError, match="broken.jpg is not a readable image"):
        Searcher(in_run).search_images([bad])
    with pytest.raises(SearchError, match="does not exist"):
        Searcher(in_run).search_images([tmp_path / "missing.png"])


@pytest.mark.workflow
def test_empty_queries_are_refused(in_run, tmp_path, capsys):
    s = Searcher(in_run)
    with pytest.raises(SearchError, match="empty query"):
        s.search_texts(["  "])
    with pytest.raises(SearchError, match="empty query"):
        s.search_texts([])
    assert cli(["search", str(in_run), "--text", ""]) == 2
    assert "empty query" in capsys.readouterr().err


def test_an_image_directory_is_refused_by_name(in_run, tmp_path, capsys):
    assert cli(["search", str(in_run), "--image", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"image {tmp_path} is a directory" in err and "--batch" in err


def test_a_truncated_codes_file_is_a_message_not_a_traceback(in_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(in_run, run)
    data = (run / "codes.h5").read_bytes()
    (run / "codes.h5").write_bytes(data[: len(data) // 2])
    assert cli(["search", str(run), "--text", "animals"]) == 2
    err = capsys.readouterr().err
    assert "codes.h5: not a readable codes file" in err and "--force" in err
    assert "Traceback" not in err


def test_an_unknown_device_is_a_message(in_run, capsys):
    assert cli(["search", str(in_run), "--text", "animals", "--device", "banana"]) == 2
    err = capsys.readouterr().err
    assert "--device: 'banana' is not a device; use auto, cpu" in err


def test_a_moved_run_asks_for_its_feature_file(in_run, capsys, monkeypatch):
    import tempfile

    from xmhash.data.demo import DemoSpec, generate_demo
    from xmhash.features.store import write_features

    shallow = Path(tempfile.mkdtemp(dir="/tmp"))  # fewer parents than a run inside a workflow
    try:
        run = shutil.copytree(in_run, shallow / "run")
        monkeypatch.chdir(shallow)
        assert cli(["search", str(run), "--text", "animals"]) == 2
        assert "was the run moved out of its workflow?" in capsys.readouterr().err
        features = in_run.parents[2] / "features/synthetic.h5"
        assert cli(["search", str(run), "--text", "animals", "--features", str(features)]) == 0
        other = shallow / "other.h5"  # a feature file of other items is refused
        write_features(other, generate_demo(DemoSpec(n_items=300, image_dim=8, text_dim=8)))
        assert cli(["search", str(run), "--text", "animals", "--features", str(other)]) == 2
        assert "is not the feature file the codes of" in capsys.readouterr().err
    finally:
        shutil.rmtree(shallow)


def another_build(features: Path, dst: Path) -> Path:
    """A copy of a feature file with other content and the same items (another build of
    the same dataset: another checkout, another encoder revision)."""
    import h5py

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(features, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["encoder_revision"] = "another-build"
    return dst


@pytest.mark.workflow
def test_a_feature_file_of_another_build_is_refused_naming_both(in_run, demo_run, tmp_path, capsys):
    own = demo_run / "results/demo/features/synthetic.h5"
    other = another_build(own, tmp_path / "other/results/demo/features/synthetic.h5")
    assert cli(["search", str(in_run), "--text", "animals", "--features", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"{other} is not the feature file the codes of {in_run / 'codes.h5'}" in err, err
    assert "they came from results/demo/features/synthetic.h5 with content sha256:" in err, err


@pytest.mark.workflow
def test_the_runs_own_feature_file_is_found_from_the_run_not_the_working_directory(
    in_run, demo_run, tmp_path, monkeypatch
):
    own = demo_run / "results/demo/features/synthetic.h5"
    another_build(own, tmp_path / "results/demo/features/synthetic.h5")  # another checkout
    monkeypatch.chdir(tmp_path)
    assert Searcher(in_run).features.resolve() == own.resolve()


@pytest.mark.workflow
def test_codes_without_a_features_digest_are_refused_with_the_fix(in_run, tmp_path, capsys):
    import h5py

    run = shutil.copytree(in_run, tmp_path / "run")
    with h5py.File(run / "codes.h5", "r+") as f:  # as an older xmhash wrote them
        del f.attrs["features_digest"]
    assert cli(["search", str(run), "--text", "animals"]) == 2
    err = capsys.readouterr().err
    assert "does not record the content digest of its feature file" in err, err
    assert f"snakemake {run / 'codes.h5'} --force" in err, err


def test_a_binary_batch_file_is_a_message(tmp_path):
    batch = tmp_path / "photo.jpg"
    batch.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01")
    with pytest.raises(SystemExit, match=f"batch file {batch} is not a text file"):
        cli(["search", str(tmp_path), "--batch", str(batch)])


@pytest.mark.workflow
def test_a_truncated_model_is_a_message_not_a_traceback(in_run, tmp_path, capsys):
    run = shutil.copytree(in_run, tmp_path / "run")
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 2])
    assert cli(["search", str(run), "--text", "animals"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'model.pt'}: not a readable model file" in err, err
    assert f"snakemake {run / 'model.pt'} --force" in err, err
