"""Round trips and error messages of the file formats: feature file, split, codes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.io import loadmat

from xmhash.codes import CodeFileError, Codes, export_mat, load_codes, make_codeset, save_codes
from xmhash.data.splits import SplitError, load_split, make_split, save_split
from xmhash.features.store import FeatureFileError, read_features, read_labels, write_features


def test_feature_file_round_trip(small_demo, small_demo_file):
    back = read_features(small_demo_file, parts=["image", "text", "texts", "words", "regions"])
    assert (back.ids == small_demo.ids).all()
    assert (back.labels == small_demo.labels).all()
    np.testing.assert_array_equal(back.image, small_demo.image)
    np.testing.assert_array_equal(back.words.embeddings, small_demo.words.embeddings)
    assert (back.regions.offsets == small_demo.regions.offsets).all()
    assert list(back.texts) == list(small_demo.texts)
    assert back.attrs["encoder"] == "synthetic" and back.attrs["schema_version"] == 1
    # readable with plain h5py, chunked and compressed
    with h5py.File(small_demo_file) as f:
        assert f["image"].compression == "gzip" and f["image"].chunks is not None


def test_feature_file_parts_not_asked_for_are_empty(small_demo_file):
    back = read_features(small_demo_file, parts=["text"])
    assert back.image.shape == (len(back.ids), 0) and back.words is None


def test_feature_file_errors_name_the_key(small_demo, tmp_path):
    bad = small_demo.image.copy()
    bad[3, 0] = np.nan
    feats = type(small_demo)(**{**small_demo.__dict__, "image": bad})
    with pytest.raises(FeatureFileError, match=r"/image has NaN/Inf.*demo000003"):
        write_features(tmp_path / "x.h5", feats)
    assert not (tmp_path / "x.h5").exists()
    short = type(small_demo)(**{**small_demo.__dict__, "labels": small_demo.labels[:-1]})
    with pytest.raises(FeatureFileError, match=r"/labels has shape .* expected \(N=600, C\)"):
        write_features(tmp_path / "y.h5", short)
    with pytest.raises(FileNotFoundError, match="feature file not found"):
        read_labels(tmp_path / "missing.h5")


def test_words_subset_keeps_rows(small_demo):
    rows = np.array([5, 2])
    sub = small_demo.words.subset(rows)
    np.testing.assert_array_equal(sub.rows(0), small_demo.words.rows(5))
    np.testing.assert_array_equal(sub.rows(1), small_demo.words.rows(2))


def test_split_protocol(tmp_path):
    sp = make_split(1000, query=100, train=500, val=50, seed=3)
    assert sp.sizes() == {"query": 100, "database": 900, "train": 500, "val": 50}
    assert not np.intersect1d(sp.query, sp.database).size
    assert np.isin(sp.train, sp.database).all() and np.isin(sp.val, sp.database).all()
    assert not np.intersect1d(sp.train, sp.val).size
    save_split(tmp_path / "s.npz", sp)
    back = load_split(tmp_path / "s.npz")
    for part in ("query", "database", "train", "val"):
        assert (getattr(back, part) == getattr(sp, part)).all()
    assert back.meta["seed"] == 3
    other = make_split(1000, query=100, train=500, val=50, seed=4)
    assert not (other.query == sp.query).all()
    all_train = make_split(1000, query=100, train="all", val=50, seed=3)
    assert len(all_train.train) == 850


def test_split_rejects_impossible_sizes():
    with pytest.raises(SplitError, match="split.train=900"):
        make_split(1000, query=100, train=900, val=50, seed=0)
    with pytest.raises(SplitError, match="split.query=1000"):
        make_split(1000, query=1000, train=10, val=0, seed=0)


def test_codes_round_trip_and_mat(tmp_path, rng):
    def side(n):
        return make_codeset(
            np.where(rng.random((n, 12)) < 0.5, -1, 1),
            np.where(rng.random((n, 12)) < 0.5, -1, 1),
            [f"id{i}" for i in range(n)],
            np.arange(n),
        )

    codes = Codes(bits=12, query=side(3), database=side(5), attrs={"method": "lsh", "seed": 1})
    save_codes(tmp_path / "codes.h5", codes)
    back = load_codes(tmp_path / "codes.h5")
    assert back.bits == 12 and back.attrs["method"] == "lsh"
    assert (back.database.text == codes.database.text).all()
    assert list(back.query.ids) == ["id0", "id1", "id2"]
    export_mat(tmp_path / "codes.mat", back)
    mat = loadmat(tmp_path / "codes.mat")
    assert mat["B_database_image"].shape == (5, 12)
    assert (mat["B_query_text"] == back.unpacked("query", "text")).all()
    with pytest.raises(CodeFileError, match="run the export stage"):
        load_codes(tmp_path / "nope.h5")


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    """Temporary files are private (0600); finished outputs follow the umask like any file."""
    import os

    from xmhash.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.md") as tmp:
            tmp.write_text("x")
        with atomic_path(tmp_path / "prepared", directory=True) as tmp:
            (tmp / "items.jsonl").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "prepared").stat().st_mode & 0o777 == 0o755
