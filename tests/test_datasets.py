"""Dataset download -> prepare against a local HTTP server serving miniature official
archives; MIRFlickr checked against the real shared metadata."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_fixtures import MirflickrMeta, mirflickr_archives, zip_bytes
from fileserver import FileServer

from xmhash.data.datasets import SOURCES, DatasetError, get_source
from xmhash.data.download import ChecksumError
from xmhash.data.prepared import read_prepared
from xmhash.data.stage import download_dataset, prepare_dataset

FAST = {"retries": 1, "timeout": 5, "backoff": 0.01}


@pytest.fixture(scope="module")
def mir_meta(shared_dir_or_skip):
    return MirflickrMeta(shared_dir_or_skip / "data/mirflickr25k-meta", n_images=120)


@pytest.fixture(scope="module")
def shared_dir_or_skip(request):
    try:
        return request.getfixturevalue("shared_dir")
    except FileNotFoundError as e:
        pytest.skip(str(e))


def get_prepared(tmp_path, source, archives, options=None, **kw):
    with FileServer(archives) as srv:
        download_dataset(
            source,
            tmp_path / "downloads",
            {"mirrors": [srv.url], "official_urls": False, **(options or {})},
            **FAST,
        )
    prepare_dataset(source, tmp_path / "downloads", tmp_path / "prepared", options or {})
    return read_prepared(tmp_path / "prepared")


def test_registry_lists_sources_with_files():
    assert {"mirflickr25k", "nuswide", "coco2014", "iaprtc12", "wikipedia", "manifest"} <= set(
        SOURCES
    )
    for name, src in SOURCES.items():
        assert src.name == name
        assert src.prepare is not None or src.import_features is not None
        assert (src.import_features is None) == (src.encoder is None)
        assert len(set(src.file_names())) == len(src.files)
    with pytest.raises(DatasetError, match="unknown dataset source 'nope'.*registered"):
        get_source("nope")


def test_mirflickr_round_trip_equals_the_standard_subset(tmp_path, mir_meta):
    prep = get_prepared(tmp_path, "mirflickr25k", mirflickr_archives(mir_meta))
    assert [it.image for it in prep.items] == mir_meta.paths
    assert [it.id for it in prep.items] == [f"im{k}" for k in mir_meta.numbers]
    np.testing.assert_array_equal(prep.label_matrix(), mir_meta.labels)
    assert [it.tags for it in prep.items] == mir_meta.tags
    assert prep.meta["vocabulary"] == mir_meta.vocabulary
    assert len(prep.label_names) == 24 and len(prep.meta["vocabulary"]) == 1386
    counts = prep.meta["counts"]
    assert counts["kept"] == len(mir_meta.numbers)
    assert counts["kept"] + counts["dropped_no_label"] + counts["dropped_no_vocabulary_tag"] == 120
    assert all(prep.image_path(it).is_file() for it in prep.items)
    # the bag-of-words columns the vocabulary defines reproduce the tag rows
    col = {t: j for j, t in enumerate(prep.meta["vocabulary"])}
    assert all(
        it.text.split(" ") == it.tags and all(t in col for t in it.tags) for it in prep.items
    )


def test_mirflickr_corrupt_image_names_it_and_leaves_nothing(tmp_path, mir_meta):
    archives = mirflickr_archives(mir_meta)
    import io
    import zipfile

    k = mir_meta.numbers[3]
    with zipfile.ZipFile(io.BytesIO(archives["mirflickr25k.zip"])) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[f"mirflickr/im{k}.jpg"] = members[f"mirflickr/im{k}.jpg"][:40]
    archives["mirflickr25k.zip"] = zip_bytes(members)
    with pytest.raises(DatasetError, match=rf"im{k}\.jpg: corrupt image"):
        get_prepared(tmp_path, "mirflickr25k", archives)
    assert not (tmp_path / "prepared").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mirflickr_missing_annotation_file_is_named(tmp_path, mir_meta):
    archives = mirflickr_archives(mir_meta)
    archives["mirflickr25k_annotations_v080.zip"] = zip_bytes({"animals.txt": "1\n"})
    with pytest.raises(DatasetError, match=r"annotations_v080.zip: annotation files .*baby.txt"):
        get_prepared(tmp_path, "mirflickr25k", archives)
    assert not (tmp_path / "prepared").exists()


def test_prepare_without_download_names_the_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"mirflickr25k\.zip: missing .*download rule"):
        prepare_dataset("mirflickr25k", tmp_path / "downloads", tmp_path / "prepared", {})


def test_download_checksum_mismatch_of_a_registered_file(tmp_path, monkeypatch):
    import dataclasses

    src = get_source("mirflickr25k")
    pinned = tuple(dataclasses.replace(f, sha256="0" * 64) for f in src.files)
    monkeypatch.setitem(SOURCES, "mirflickr25k", dataclasses.replace(src, files=pinned))
    with FileServer({f.name: b"not the archive" for f in src.files}) as srv:
        with pytest.raises(ChecksumError, match=r"mirflickr25k\.zip.*sha256 .*expected 0000"):
            download_dataset(
                "mirflickr25k", tmp_path, {"mirrors": [srv.url], "official_urls": False}, **FAST
            )
    assert list(tmp_path.iterdir()) == []
