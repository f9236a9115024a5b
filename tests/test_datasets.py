"""Dataset download -> prepare against a local HTTP server serving miniature official
archives; MIRFlickr checked against the real shared metadata."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import MirflickrMeta, mirflickr_archives, zip_bytes
from fileserver import FileServer

from xmhash.data.datasets import SOURCES, DatasetError, get_source
from xmhash.data.download import ChecksumError, DownloadError
from xmhash.data.prepared import read_prepared
from xmhash.data.stage import download_dataset, prepare_dataset

FAST = {"retries": 1, "timeout": 5, "backoff": 0.01}


@pytest.fixture(scope="module")
def mir_meta(shared_dir_or_skip):
    return MirflickrMeta(shared_dir_or_skip / "data/mirflickr25k-meta", n_images=300)


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
    assert counts["kept"] + counts["dropped_no_label"] + counts["dropped_no_vocabulary_tag"] == 300
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


# ---------------------------------------------------------------- Wikipedia


def test_wikipedia_prepare_and_feature_import(tmp_path):
    from dataset_fixtures import WIKI_CATEGORIES, wikipedia_archive

    from xmhash.data.splits import split_features
    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    archive, truth = wikipedia_archive()
    prep = get_prepared(tmp_path, "wikipedia", {"wikipedia_dataset.zip": archive})
    assert [it.id for it in prep.items] == truth["ids"]
    assert [it.labels for it in prep.items] == [[c] for c in truth["labels"]]
    assert list(prep.official_split()) == truth["split"]
    assert [it.text for it in prep.items] == truth["texts"]
    assert prep.label_names == WIKI_CATEGORIES
    assert all(prep.image_path(it).is_file() for it in prep.items)

    h5 = tmp_path / "wiki_sift_lda.h5"
    import_features("wikipedia", tmp_path / "downloads", h5, {})
    feats = read_features(h5)
    assert list(feats.ids) == truth["ids"]
    np.testing.assert_allclose(feats.image, truth["image"], rtol=1e-6)
    np.testing.assert_allclose(feats.text, truth["text"], rtol=1e-6)
    assert feats.attrs["encoder"] == "wiki_sift_lda"
    split = split_features(
        h5, tmp_path / "s.npz", seed=0, query=5, train="all", val=2, official=True
    )
    assert list(split.query) == [i for i, s in enumerate(truth["split"]) if s == "query"]


def test_wikipedia_feature_rows_must_match_the_lists(tmp_path):
    from dataset_fixtures import wikipedia_archive

    from xmhash.data.stage import import_features

    archive, _ = wikipedia_archive()
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    lines = members["wikipedia_dataset/testset_txt_img_cat.list"].decode().splitlines()
    members["wikipedia_dataset/testset_txt_img_cat.list"] = (
        "\n".join(lines[:-1]) + "\n"
    )  # one pair fewer
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads/wikipedia_dataset.zip").write_bytes(zip_bytes(members))
    with pytest.raises(
        DatasetError,
        match=r"downloads/wikipedia_dataset\.zip: its raw_features\.mat: I_te has shape "
        r"\(5, 128\), expected \(4, D\)",
    ) as err:
        import_features("wikipedia", tmp_path / "downloads", tmp_path / "f.h5", {})
    assert ".work" not in str(err.value)  # not the scratch directory, deleted by then
    assert not (tmp_path / "f.h5").exists()


def test_a_refused_layout_names_the_archive_not_the_scratch_directory(tmp_path):
    from dataset_fixtures import wikipedia_archive

    archive, truth = wikipedia_archive()
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    gone = f"wikipedia_dataset/texts/{truth['ids'][0]}.xml"
    del members[gone]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads/wikipedia_dataset.zip").write_bytes(zip_bytes(members))
    with pytest.raises(DatasetError) as err:
        prepare_dataset("wikipedia", tmp_path / "downloads", tmp_path / "prepared", {})
    zip_path = tmp_path / "downloads" / "wikipedia_dataset.zip"
    assert str(err.value) == f"{zip_path}: its {gone}: text file missing"
    assert [p.name for p in tmp_path.iterdir()] == ["downloads"]  # no scratch left either


def _import_folder(tmp_path, root, **options):
    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    options = {"root": str(root), **options}
    download_dataset("wikipedia", tmp_path / "downloads", options)  # nothing to fetch
    assert list((tmp_path / "downloads").iterdir()) == [tmp_path / "downloads/manifest.json"]
    import_features("wikipedia", tmp_path / "downloads", tmp_path / "f.h5", options)
    return read_features(tmp_path / "f.h5")


@pytest.mark.parametrize("layout", ["archive", "features"])
def test_wikipedia_imports_an_unpacked_folder(tmp_path, layout):
    """The archive as it unpacks, or the features as they are published (the .mat and the
    two lists, a stray "A" before the first text id, no categories.list)."""
    from dataset_fixtures import FEATURES_ONLY, WIKI_CATEGORIES, wikipedia_folder

    only = FEATURES_ONLY if layout == "features" else ()
    root, truth = wikipedia_folder(tmp_path / "wiki", only=only, stray_a=layout == "features")
    feats = _import_folder(tmp_path, root)
    assert list(feats.ids) == truth["ids"]
    np.testing.assert_allclose(feats.image, truth["image"], rtol=1e-6)
    np.testing.assert_allclose(feats.text, truth["text"], rtol=1e-6)
    assert list(feats.official_split) == truth["split"]
    assert [int(np.flatnonzero(r)[0]) for r in feats.labels] == truth["labels"]
    n = feats.labels.shape[1]
    assert feats.label_names == (
        WIKI_CATEGORIES if layout == "archive" else [str(c + 1) for c in range(n)]
    )


def test_wikipedia_tfidf_texts_are_selectable(tmp_path):
    from dataset_fixtures import FEATURES_ONLY, wikipedia_folder

    root, truth = wikipedia_folder(tmp_path / "wiki", only=FEATURES_ONLY)
    feats = _import_folder(tmp_path, root, text_feature="tfidf")
    np.testing.assert_allclose(feats.text, truth["tfidf"], rtol=1e-6)
    assert "TF-IDF" in feats.attrs["encoder_id"]


def test_wikipedia_folder_prepare_needs_the_texts(tmp_path):
    from dataset_fixtures import FEATURES_ONLY, wikipedia_folder

    root, truth = wikipedia_folder(tmp_path / "wiki")
    options = {"root": str(root)}
    download_dataset("wikipedia", tmp_path / "downloads", options)
    prepare_dataset("wikipedia", tmp_path / "downloads", tmp_path / "prepared", options)
    assert [it.text for it in read_prepared(tmp_path / "prepared").items] == truth["texts"]
    bare, _ = wikipedia_folder(tmp_path / "bare", only=FEATURES_ONLY)
    with pytest.raises(DatasetError, match=r"bare/texts: missing.*encoder: wiki_sift_lda"):
        prepare_dataset("wikipedia", tmp_path / "downloads", tmp_path / "p2", {"root": str(bare)})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"text_feature": "bow"}, r"text_feature 'bow', expected one of \['lda', 'tfidf'\]"),
        ({"root": "{tmp}/nowhere"}, r"nowhere: no such folder \(datasets.<name>.root\)"),
    ],
)
def test_wikipedia_folder_errors_name_the_setting(tmp_path, options, match):
    from dataset_fixtures import FEATURES_ONLY, wikipedia_folder

    from xmhash.data.stage import import_features

    root, _ = wikipedia_folder(tmp_path / "wiki", only=FEATURES_ONLY)
    options = {"root": str(root), **{k: v.format(tmp=tmp_path) for k, v in options.items()}}
    (tmp_path / "downloads").mkdir()
    with pytest.raises(DatasetError, match=match):
        import_features("wikipedia", tmp_path / "downloads", tmp_path / "f.h5", options)


def test_wikipedia_tfidf_missing_names_the_keys(tmp_path):
    from dataset_fixtures import mat_bytes, wikipedia_folder

    from xmhash.data.stage import import_features

    root, _ = wikipedia_folder(tmp_path / "wiki")
    (root / "raw_features.mat").write_bytes(
        mat_bytes(
            {
                k: np.ones((12 if k.endswith("tr") else 5, 2))
                for k in ("I_tr", "I_te", "T_tr", "T_te")
            }
        )
    )
    (tmp_path / "downloads").mkdir()
    with pytest.raises(DatasetError, match=r"raw_features\.mat: key 'T_tfidf_tr' missing"):
        import_features(
            "wikipedia",
            tmp_path / "downloads",
            tmp_path / "f.h5",
            {"root": str(root), "text_feature": "tfidf"},
        )


WIKI_REAL = Path(__file__).resolve().parents[1] / "../shared/data/wikipedia-sift-lda"


@pytest.mark.skipif(not WIKI_REAL.is_dir(), reason="no ../shared/data/wikipedia-sift-lda")
def test_wikipedia_real_folder_imports_as_published(tmp_path):
    """The published SIFT/LDA folder: 2,173 + 693 pairs, the official split, 10 classes
    named from its categories.list, the stray "A" gone from the first text id."""
    feats = _import_folder(tmp_path, WIKI_REAL.resolve())
    assert feats.image.shape == (2866, 128) and feats.text.shape == (2866, 10)
    assert list(np.unique(feats.official_split, return_counts=True)[1]) == [693, 2173]
    assert feats.label_names[0] == "art" and len(feats.label_names) == 10
    assert not feats.ids[0].startswith("A") and len(feats.ids[0]) == len(feats.ids[1])
    np.testing.assert_allclose(feats.image.sum(1), 1, atol=1e-4)
    counts = feats.labels[feats.official_split == "train"].sum(0)
    assert counts[0] == 138 and counts[-1] == 347  # art, warfare (README)


# ---------------------------------------------------------------- NUS-WIDE


@pytest.fixture(scope="module")
def nus_vocab(shared_dir_or_skip):
    return (
        (shared_dir_or_skip / "data/mirflickr25k-meta/nuswide_TagList1k.txt")
        .read_text()
        .split("\n")[:-1]
    )


def _write_images(root, images):
    for rel, data in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.mark.parametrize("variant, k", [("tc10", 10), ("tc21", 21)])
def test_nuswide_variants_keep_the_most_frequent_concepts(tmp_path, nus_vocab, variant, k):
    from dataset_fixtures import nuswide_files

    official, images, raw = nuswide_files(nus_vocab)
    _write_images(tmp_path / "imgs", images)
    prep = get_prepared(
        tmp_path, "nuswide", official, {"variant": variant, "image_dir": str(tmp_path / "imgs")}
    )
    freq = raw["labels"].astype(int).sum(0)
    top = sorted(range(len(freq)), key=lambda j: (-freq[j], j))[:k]
    assert prep.label_names == [raw["concepts"][j] for j in top]
    y = raw["labels"][:, top]
    keep = [i for i in range(len(y)) if y[i].any() and raw["tags"][i].any()]
    assert [it.image for it in prep.items] == [raw["paths"][i] for i in keep]
    np.testing.assert_array_equal(prep.label_matrix(), y[keep])
    assert [it.tags for it in prep.items] == [
        [nus_vocab[j] for j in np.flatnonzero(raw["tags"][i])] for i in keep
    ]
    assert prep.image_root == (tmp_path / "imgs").resolve()


def test_nuswide_label_file_with_wrong_rows_is_named(tmp_path, nus_vocab):
    from dataset_fixtures import nuswide_files

    official, images, raw = nuswide_files(nus_vocab)
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(official["Groundtruth.zip"])) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    bad = f"Groundtruth/AllLabels/Labels_{raw['concepts'][3]}.txt"
    members[bad] = members[bad][:-4]  # two rows fewer
    official["Groundtruth.zip"] = zip_bytes(members)
    _write_images(tmp_path / "imgs", images)
    with pytest.raises(
        DatasetError,
        match=rf"Labels_{raw['concepts'][3]}\.txt: 38 rows x 1 "
        r"columns, expected \(40, 1\)",
    ):
        get_prepared(tmp_path, "nuswide", official, {"image_dir": str(tmp_path / "imgs")})
    assert not (tmp_path / "prepared").exists()


def test_nuswide_needs_the_image_folder(tmp_path, nus_vocab):
    from dataset_fixtures import nuswide_files

    official, _, _ = nuswide_files(nus_vocab)
    with pytest.raises(DatasetError, match=r"image_dir is not set"):
        get_prepared(tmp_path, "nuswide", official)


# ---------------------------------------------------------------- MS-COCO


def test_coco_labels_captions_and_dropped_count(tmp_path):
    from dataset_fixtures import coco_archives

    archives, truth = coco_archives()
    prep = get_prepared(tmp_path, "coco2014", archives)
    assert prep.label_names == ["person", "car", "dog", "toothbrush"]
    assert [it.id for it in prep.items] == truth["ids"]
    assert {it.id: it.labels for it in prep.items} == truth["labels"]
    assert prep.meta["counts"] == {"images": 5, "dropped_no_label": 1, "kept": 4}
    first = prep.items[0]
    assert first.captions == [f"a photo {first.id}-{j}" for j in range(5)]
    assert first.text == first.captions[0]
    assert all(prep.image_path(it).is_file() for it in prep.items)


# ---------------------------------------------------------------- IAPR TC-12


def test_iapr_captions_and_label_file(tmp_path):
    from dataset_fixtures import jpeg, tar_gz_bytes

    members = {}
    for d, i in (("00", 25), ("00", 26), ("01", 1007)):
        members[f"iaprtc12/images/{d}/{i}.jpg"] = jpeg(i)
        members[f"iaprtc12/annotations_complete_eng/{d}/{i}.eng"] = (
            f"<DOC>\n<DOCNO>annotations/{d}/{i}.eng</DOCNO>\n<TITLE>title {i}</TITLE>\n"
            f"<DESCRIPTION>a view of {i};</DESCRIPTION>\n</DOC>\n"
        )
    labels = tmp_path / "labels.txt"
    labels.write_text("00/25 sky tree\n01/1007 sky\n")
    prep = get_prepared(
        tmp_path, "iaprtc12", {"iaprtc12.tgz": tar_gz_bytes(members)}, {"labels_file": str(labels)}
    )
    assert [it.id for it in prep.items] == ["00_25", "01_1007"]
    assert prep.label_names == ["sky", "tree"]
    assert [it.labels for it in prep.items] == [[0, 1], [0]]
    assert prep.items[0].text == "a view of 25;"
    assert prep.meta["counts"]["dropped_no_label_or_text"] == 1


# ---------------------------------------------------------------- class folders


def _folders(root, pairs_per_class, texts_per_class):
    from dataset_fixtures import jpeg

    for c in ("albatross", "wren"):
        for i in range(pairs_per_class):
            (root / "images" / c).mkdir(parents=True, exist_ok=True)
            (root / "images" / c / f"{c}{i}.jpg").write_bytes(jpeg(i))
        for i in range(texts_per_class):
            (root / "texts" / c).mkdir(parents=True, exist_ok=True)
            (root / "texts" / c / f"{c}{i}.txt").write_text(f"text {c} {i}\n")


def test_instance_pairing_by_file_name(tmp_path):
    _folders(tmp_path / "xm", 3, 2)
    prep = get_prepared(tmp_path, "xmedia", {}, {"root": str(tmp_path / "xm")})
    assert [it.id for it in prep.items] == [
        "albatross/albatross0",
        "albatross/albatross1",
        "wren/wren0",
        "wren/wren1",
    ]
    assert prep.items[1].text == "text albatross 1" and prep.items[2].labels == [1]
    assert prep.meta["counts"]["unpaired_files"] == 2


def test_fg_xmedia_class_level_pairing(tmp_path):
    _folders(tmp_path / "fg", 5, 2)
    prep = get_prepared(tmp_path, "fg_xmedia", {}, {"root": str(tmp_path / "fg")})
    assert len(prep.items) == 10  # every image once
    albatross = [it.text for it in prep.items if it.labels == [0]]
    assert albatross == [f"text albatross {i % 2}" for i in range(5)]  # texts in turn


def test_registration_only_set_without_root_says_what_to_set(tmp_path):
    with pytest.raises(DatasetError, match=r"datasets\.mine\.root must name the xmedianet"):
        get_prepared(tmp_path, "xmedianet", {}, {"name": "mine"})
    with pytest.raises(DownloadError, match=r"or set datasets\.mine\.local_dir"):
        download_dataset("wikipedia", tmp_path / "dl", {"official_urls": False}, dataset="mine")


# ---------------------------------------------------------------- manifest


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest(tmp_path, kind):
    import json

    from dataset_fixtures import jpeg

    (tmp_path / "imgs/a").mkdir(parents=True)
    for i in range(3):
        (tmp_path / f"imgs/a/{i}.jpg").write_bytes(jpeg(i))
    rows = [
        ("a/0.jpg", "a red car", ["car", "red"]),
        ("a/1.jpg", "a dog, running", ["dog"]),
        ("a/2.jpg", "nothing", []),
    ]
    path = tmp_path / f"m.{kind}"
    if kind == "csv":
        path.write_text(
            "image,text,labels\n" + "".join(f'{im},"{tx}",{"|".join(ls)}\n' for im, tx, ls in rows)
        )
    else:
        path.write_text(
            "".join(
                json.dumps({"image": im, "text": tx, "labels": ls}) + "\n" for im, tx, ls in rows
            )
        )
    prep = get_prepared(
        tmp_path, "manifest", {}, {"manifest": str(path), "image_dir": str(tmp_path / "imgs")}
    )
    assert prep.label_names == ["car", "dog", "red"]
    assert [(it.image, it.text, it.labels) for it in prep.items] == [
        ("a/0.jpg", "a red car", [0, 2]),
        ("a/1.jpg", "a dog, running", [1]),
        ("a/2.jpg", "nothing", []),
    ]


def test_manifest_line_with_missing_image_is_named(tmp_path):
    from dataset_fixtures import jpeg

    (tmp_path / "0.jpg").write_bytes(jpeg(0))
    path = tmp_path / "m.csv"
    path.write_text("image,text,labels\n0.jpg,x,a\nmissing.jpg,y,b\n")
    with pytest.raises(
        DatasetError, match=r"m\.csv: 1 bad entry:\n  line 3: image 'missing.jpg' not found"
    ):
        get_prepared(tmp_path, "manifest", {}, {"manifest": str(path)})
    assert not (tmp_path / "prepared").exists()


def test_every_bad_manifest_entry_is_named_in_one_message(tmp_path):
    path = _manifest(
        tmp_path,
        "a,0.jpg,x,a\nb,gone1.jpg,y,b\nc,1.jpg,z,a\na,2.jpg,w,a\nd,gone2.jpg,v,b\ne,bad.jpg,u,a\n",
    )
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError) as err:
        get_prepared(tmp_path, "manifest", {}, {"manifest": str(path), "name": "mine"})
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 4 bad entries:"
    assert lines[1].startswith("  line 3: image 'gone1.jpg' not found at ")
    assert lines[2] == "  line 5: id 'a' is already used on line 2; " + lines[2].split("; ", 1)[1]
    assert lines[3].startswith("  line 6: image 'gone2.jpg' not found")
    assert lines[4].startswith("  line 7: ") and "bad.jpg: corrupt image" in lines[4]
    assert lines[5] == (
        "Fix them, or set datasets.mine.skip_missing: true to leave out the entries whose "
        "image is missing"
    )


def test_skip_missing_leaves_the_missing_images_out_and_names_them(tmp_path, caplog):
    path = _manifest(tmp_path, "a,0.jpg,x,a\nb,gone1.jpg,y,b\nc,1.jpg,z,a\nd,gone2.jpg,v,b\n")
    options = {"manifest": str(path), "name": "mine", "skip_missing": True}
    with caplog.at_level("WARNING", logger="xmhash.data.datasets.manifest"):
        prep = get_prepared(tmp_path, "manifest", {}, options)
    assert [it.id for it in prep.items] == ["a", "c"] and prep.label_names == ["a"]
    assert "left out 2 entries whose image is missing (datasets.mine.skip_missing)" in caplog.text
    assert "line 3: 'gone1.jpg'; line 5: 'gone2.jpg'" in caplog.text
    assert prep.meta["left_out"] == ["line 3: 'gone1.jpg'", "line 5: 'gone2.jpg'"]
    assert prep.meta["counts"]["missing_images_left_out"] == 2


def test_a_single_empty_text_is_warned_about_with_the_count(tmp_path, caplog):
    path = _manifest(tmp_path, 'a,0.jpg,x,a\nb,1.jpg,"",b\nc,2.jpg,z,a\n')
    with caplog.at_level("WARNING", logger="xmhash.data.datasets.manifest"):
        prep = get_prepared(tmp_path, "manifest", {}, {"manifest": str(path)})
    assert len(prep.items) == 3
    assert "1 of 3 entries have an empty text (line 3)" in caplog.text


def _manifest(tmp_path, lines: str):
    from dataset_fixtures import jpeg

    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(jpeg(i))
    path = tmp_path / "m.csv"
    path.write_text("id,image,text,labels\n" + lines)
    return path


def test_manifest_duplicate_ids_name_both_lines(tmp_path):
    path = _manifest(tmp_path, "x,0.jpg,a,a\ny,1.jpg,b,b\nx,2.jpg,c,a\n")
    with pytest.raises(
        DatasetError, match=r"m\.csv: 1 bad entry:\n  line 4: id 'x' is already used on line 2"
    ):
        get_prepared(tmp_path, "manifest", {}, {"manifest": str(path)})


def test_manifest_with_only_empty_texts_is_refused(tmp_path):
    path = _manifest(tmp_path, ',0.jpg,"",a\n,1.jpg," ",b\n')
    with pytest.raises(DatasetError, match=r"m\.csv: the text of every row is empty"):
        get_prepared(tmp_path, "manifest", {}, {"manifest": str(path)})
    assert not (tmp_path / "prepared").exists()


def test_every_prepared_dataset_needs_some_text(tmp_path):
    from xmhash.data.prepared import Item, PreparedError, write_prepared

    items = [Item(id=str(i), image=f"{i}.jpg", text="", labels=[0]) for i in range(3)]
    with pytest.raises(PreparedError, match="the text of every item is empty"):
        write_prepared(tmp_path / "p", items, {"label_names": ["a"]})


def test_an_empty_manifest_setting_names_the_dataset(tmp_path):
    with pytest.raises(DatasetError, match=r"datasets\.mine\.manifest is empty") as err:
        prepare_dataset("manifest", tmp_path, tmp_path / "p", {"name": "mine", "manifest": ""})
    assert "<" not in str(err.value)


def test_missing_manifest_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.jsonl: manifest file missing"):
        get_prepared(tmp_path, "manifest", {}, {"manifest": str(tmp_path / "nope.jsonl")})


# ---------------------------------------------------------------- .mat imports


def test_dcmh_mat_import_and_row_mismatch(tmp_path):
    from dataset_fixtures import mat_bytes

    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    rng = np.random.default_rng(0)
    x, y = rng.random((30, 16)), (rng.random((30, 50)) < 0.1).astype(np.float64)
    lab = (rng.random((30, 24)) < 0.2).astype(np.float64)
    for name, key, arr in (("i", "XAll", x), ("y", "YAll", y), ("l", "LAll", lab)):
        (tmp_path / f"{name}.mat").write_bytes(mat_bytes({key: arr}))
    opts = {
        "image_mat": str(tmp_path / "i.mat"),
        "image_key": "XAll",
        "text_mat": str(tmp_path / "y.mat"),
        "text_key": "YAll",
        "label_mat": str(tmp_path / "l.mat"),
        "label_key": "LAll",
    }
    download_dataset("dcmh_mat", tmp_path / "dl", {})
    import_features("dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", opts)
    feats = read_features(tmp_path / "f.h5")
    np.testing.assert_allclose(feats.image, x, rtol=1e-6)
    np.testing.assert_array_equal(feats.labels, lab.astype(np.uint8))

    (tmp_path / "l.mat").write_bytes(mat_bytes({"LAll": lab[:29]}))
    with pytest.raises(DatasetError, match=r"l\.mat: LAll has 29 rows, expected 30"):
        import_features("dcmh_mat", tmp_path / "dl", tmp_path / "g.h5", opts)
    assert not (tmp_path / "g.h5").exists()
    (tmp_path / "l.mat").write_bytes(mat_bytes({"LAll": lab}))
    (tmp_path / "i.mat").write_bytes(mat_bytes({"XAll": x.T}))  # the image file, transposed
    with pytest.raises(DatasetError, match=r"i\.mat: XAll has 16 rows, expected 30.*transposed"):
        import_features("dcmh_mat", tmp_path / "dl", tmp_path / "g.h5", opts)


def struct_mat(path, data: dict, v73: bool) -> None:
    """A .mat file holding the MATLAB struct ``data`` (nested dicts are nested structs),
    as MATLAB writes it: v5 (scipy) or v7.3 (HDF5 groups, arrays stored transposed)."""
    if not v73:
        from dataset_fixtures import mat_bytes

        path.write_bytes(mat_bytes({"data": data}))
        return
    import h5py

    def put(group, tree):
        for k, v in tree.items():
            if isinstance(v, dict):
                put(group.create_group(k), v)
            else:
                group[k] = np.asarray(v).T

    with h5py.File(path, "w", userblock_size=512) as f:
        put(f.create_group("data"), data)


def _struct_data(rng, n=30):
    x, t = rng.random((n, 16)), rng.random((n, 6))
    y = rng.integers(1, 5, (n, 1)).astype(np.float64)
    y[0] = 4
    test = np.arange(n - 8, n) + 1  # MATLAB's 1-based indices
    train = np.arange(1, 13)
    return x, t, y, train, test


@pytest.mark.parametrize("v73", [False, True])
def test_dcmh_mat_reads_struct_fields_and_column_major_arrays(tmp_path, v73):
    """Fields ``data.X1`` (N x D), ``data.X2`` stored D x N, ``data.Y`` and the split's
    index vectors ``data.split.ind_train``/``ind_test``, all in one struct file."""
    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    x, t, y, train, test = _struct_data(np.random.default_rng(0))
    split = {"ind_train": train.reshape(-1, 1), "ind_test": test.reshape(-1, 1)}
    struct_mat(tmp_path / "d.mat", {"X1": x, "X2": t.T, "Y": y, "split": split}, v73)
    mat = str(tmp_path / "d.mat")
    opts = {
        **{f"{part}_mat": mat for part in ("image", "text", "label")},
        "image_key": "data.X1",
        "text_key": "data.X2",
        "text_layout": "columns",
        "label_key": "data.Y",
        "train_index_key": "data.split.ind_train",
        "query_index_key": "data.split.ind_test",
    }
    download_dataset("dcmh_mat", tmp_path / "dl", {})
    import_features("dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", opts)
    feats = read_features(tmp_path / "f.h5")
    np.testing.assert_allclose(feats.image, x, rtol=1e-6)
    np.testing.assert_allclose(feats.text, t, rtol=1e-6)
    np.testing.assert_array_equal(feats.labels.argmax(1), y[:, 0] - 1)
    want = np.full(len(x), "database", dtype=object)
    want[train - 1], want[test - 1] = "train", "query"
    assert list(feats.official_split) == list(want)


@pytest.mark.parametrize("v73", [False, True])
@pytest.mark.parametrize(
    ("key", "match"),
    [
        (
            "data",
            r"d\.mat: data is a MATLAB struct \(fields X1, Y, split\), expected an "
            r"array: name one of its fields, e.g. data\.X1",
        ),
        (
            "X1",
            r"d\.mat: key 'X1' missing \(keys: \['data'\]\); the struct data has a "
            r"field X1: write data\.X1",
        ),
        ("data.X9", r"d\.mat: key 'data\.X9' missing \(fields of data: X1, Y, split\)"),
        (
            "data.X1.a",
            r"d\.mat: data\.X1 is not a struct \(an array of shape \(30, 16\)\), "
            r"so it has no field 'a'",
        ),
        ("data.split", r"d\.mat: data\.split is a MATLAB struct \(fields ind_train\)"),
    ],
)
def test_dcmh_mat_struct_errors_name_file_key_and_what_was_expected(tmp_path, v73, key, match):
    from xmhash.data.stage import import_features

    x, _, y, train, _ = _struct_data(np.random.default_rng(0))
    struct_mat(tmp_path / "d.mat", {"X1": x, "Y": y, "split": {"ind_train": train}}, v73)
    opts = {
        **{f"{part}_mat": str(tmp_path / "d.mat") for part in ("image", "text", "label")},
        "image_key": key,
        "text_key": "data.X1",
        "label_key": "data.Y",
    }
    (tmp_path / "dl").mkdir()
    with pytest.raises(DatasetError, match=match):
        import_features("dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", opts)


def test_dcmh_mat_transposed_file_names_the_layout_setting(tmp_path):
    from xmhash.data.stage import import_features

    x, t, y, *_ = _struct_data(np.random.default_rng(0))
    struct_mat(tmp_path / "d.mat", {"X1": x.T, "X2": t, "Y": y}, False)
    opts = {
        **{f"{part}_mat": str(tmp_path / "d.mat") for part in ("image", "text", "label")},
        "name": "mine",
        "image_key": "data.X1",
        "text_key": "data.X2",
        "label_key": "data.Y",
    }
    (tmp_path / "dl").mkdir()
    with pytest.raises(
        DatasetError,
        match=r"data\.X1 has 16 rows, expected 30.*transposed.*datasets\.mine\.image_layout: columns",
    ):
        import_features("dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", opts)
    with pytest.raises(DatasetError, match=r"datasets\.mine\.image_layout 'cols', expected one of"):
        import_features(
            "dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", {**opts, "image_layout": "cols"}
        )
    import_features(
        "dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", {**opts, "image_layout": "columns"}
    )


def test_rshnl_mat_reads_declared_field_paths_column_major(tmp_path):
    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    rng = np.random.default_rng(0)
    parts = {
        "img_tr": rng.random((40, 8)), "txt_tr": rng.random((40, 6)),
        "lab_tr": rng.integers(1, 5, (40, 1)),
        "img_te": rng.random((12, 8)), "txt_te": rng.random((12, 6)),
        "lab_te": rng.integers(1, 5, (12, 1)),
    }  # fmt: skip
    stored = {k: (v.T if k.startswith(("img", "txt")) else v) for k, v in parts.items()}
    struct_mat(tmp_path / "x.mat", {"wiki": stored}, False)
    keys = {
        "train_imgs_deep": "data.wiki.img_tr", "train_texts_doc": "data.wiki.txt_tr",
        "train_imgs_labels": "data.wiki.lab_tr", "test_imgs_deep": "data.wiki.img_te",
        "test_texts_doc": "data.wiki.txt_te", "test_imgs_labels": "data.wiki.lab_te",
    }  # fmt: skip
    opts = {"mat": str(tmp_path / "x.mat"), "format": "wiki", "val_rows": 4, "keys": keys,
            "layout": "columns"}  # fmt: skip
    (tmp_path / "dl").mkdir()
    import_features("rshnl_mat", tmp_path / "dl", tmp_path / "f.h5", opts)
    feats = read_features(tmp_path / "f.h5")
    np.testing.assert_allclose(
        feats.image, np.concatenate([parts["img_tr"], parts["img_te"]]), rtol=1e-6
    )
    np.testing.assert_allclose(
        feats.text, np.concatenate([parts["txt_tr"], parts["txt_te"]]), rtol=1e-6
    )
    assert list(feats.official_split) == ["train"] * 40 + ["val"] * 4 + ["query"] * 8
    with pytest.raises(DatasetError, match=r"keys: 'I_tr' is not a key of the wiki format"):
        import_features(
            "rshnl_mat", tmp_path / "dl", tmp_path / "g.h5", {**opts, "keys": {"I_tr": "x"}}
        )


def test_rshnl_xmedia_mat_split(tmp_path):
    from dataset_fixtures import mat_bytes

    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    rng = np.random.default_rng(0)
    arrays = {
        "I_tr_CNN": rng.random((40, 8)),
        "T_tr_BOW": rng.random((40, 6)),
        "trImgCat": rng.integers(1, 21, (40, 1)),
        "I_te_CNN": rng.random((12, 8)),
        "T_te_BOW": rng.random((12, 6)),
        "teImgCat": rng.integers(1, 21, (12, 1)),
    }
    arrays["trImgCat"][0] = 20
    (tmp_path / "x.mat").write_bytes(mat_bytes(arrays))
    download_dataset("rshnl_mat", tmp_path / "dl", {})
    import_features(
        "rshnl_mat",
        tmp_path / "dl",
        tmp_path / "f.h5",
        {"mat": str(tmp_path / "x.mat"), "format": "xmedia", "val_rows": 5},
    )
    feats = read_features(tmp_path / "f.h5")
    assert list(feats.official_split) == ["train"] * 40 + ["val"] * 5 + ["query"] * 7
    assert feats.labels.shape == (52, 20) and (feats.labels.sum(1) == 1).all()
    cat = np.concatenate([arrays["trImgCat"], arrays["teImgCat"]]).ravel()
    np.testing.assert_array_equal(feats.labels.argmax(1), cat - 1)


def test_truncated_download_in_place_is_reported_by_prepare(tmp_path, mir_meta):
    archives = mirflickr_archives(mir_meta)
    (tmp_path / "downloads").mkdir()
    for name, data in archives.items():
        (tmp_path / "downloads" / name).write_bytes(data)
    path = tmp_path / "downloads/mirflickr25k.zip"
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(
        DatasetError,
        match=r"mirflickr25k\.zip: not a zip or tar archive, or "
        r"truncated.*moved aside.*run the workflow again",
    ):
        prepare_dataset("mirflickr25k", tmp_path / "downloads", tmp_path / "prepared", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads"]
    assert (tmp_path / "downloads/mirflickr25k.zip.corrupt").exists()


def test_schema_source_enum_equals_registry():
    import yaml
    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    assert set(props["source"]["enum"]) == {"demo", "demo_images", *SOURCES}
    for src in SOURCES.values():
        assert set(src.options) <= set(props), src.name


@pytest.mark.parametrize("v73", [True, False])
def test_dcmh_raw_pixels_become_a_prepared_dataset(tmp_path, v73):
    import h5py
    from dataset_fixtures import mat_bytes
    from PIL import Image

    rng = np.random.default_rng(1)
    n, h, w = 6, 5, 7
    hwc = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)  # what each image must be
    if v73:  # as h5py sees a MATLAB v7.3 IAll: (N, 3, W, H)
        with h5py.File(tmp_path / "iall.mat", "w", userblock_size=512) as f:
            f["IAll"] = hwc.transpose(0, 3, 2, 1)
    else:  # v5: MATLAB order (H, W, 3, N)
        (tmp_path / "iall.mat").write_bytes(mat_bytes({"IAll": hwc.transpose(1, 2, 3, 0)}))
    vocab = ["sky", "dog", "night", "red"]
    bow = np.array(
        [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0], [1, 0, 0, 0]], float
    )
    lab = (rng.random((n, 3)) < 0.5).astype(float)
    (tmp_path / "y.mat").write_bytes(mat_bytes({"YAll": bow}))
    (tmp_path / "l.mat").write_bytes(mat_bytes({"LAll": lab}))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    opts = {
        "image_mat": str(tmp_path / "iall.mat"),
        "image_key": "IAll",
        "text_mat": str(tmp_path / "y.mat"),
        "text_key": "YAll",
        "label_mat": str(tmp_path / "l.mat"),
        "label_key": "LAll",
        "vocabulary": str(tmp_path / "vocab.txt"),
    }
    download_dataset("dcmh_mat", tmp_path / "dl", {})
    prepare_dataset("dcmh_mat", tmp_path / "dl", tmp_path / "prepared", opts)
    prep = read_prepared(tmp_path / "prepared")
    for i, it in enumerate(prep.items):
        np.testing.assert_array_equal(np.asarray(Image.open(prep.image_path(it))), hwc[i])
    assert [it.text for it in prep.items] == [
        "sky red",
        "dog",
        "",
        "sky dog night red",
        "night",
        "sky",
    ]
    np.testing.assert_array_equal(prep.label_matrix(), lab.astype(np.uint8))

    (tmp_path / "vocab.txt").write_text("sky\ndog\n")
    with pytest.raises(DatasetError, match=r"vocab.txt: 2 words, but y.mat:YAll has 4 columns"):
        prepare_dataset("dcmh_mat", tmp_path / "dl", tmp_path / "p2", opts)
    assert not (tmp_path / "p2").exists()


def test_v73_feature_arrays_are_read_in_matlab_orientation(tmp_path):
    import h5py

    from xmhash.data.datasets.matfile import load_mat

    x = np.arange(12.0).reshape(4, 3)  # MATLAB: 4 items x 3 dims
    with h5py.File(tmp_path / "x.mat", "w", userblock_size=512) as f:
        f["XAll"] = x.T  # how MATLAB v7.3 stores it (column-major)
    np.testing.assert_array_equal(load_mat(tmp_path / "x.mat")["XAll"], x)
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(DatasetError, match=r"bad\.mat: not a readable \.mat file"):
        load_mat(tmp_path / "bad.mat")


def test_dcmh_mat_split_masks_and_overlaps(tmp_path):
    from dataset_fixtures import mat_bytes

    from xmhash.data.stage import import_features
    from xmhash.features.store import read_features

    x, t, y, *_ = _struct_data(np.random.default_rng(0), n=10)
    train = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])  # a 0/1 mask
    (tmp_path / "d.mat").write_bytes(mat_bytes({"X": x, "T": t, "Y": y}))
    (tmp_path / "s.mat").write_bytes(mat_bytes({"tr": train, "te": np.array([[9, 10]])}))
    opts = {
        **{f"{part}_mat": str(tmp_path / "d.mat") for part in ("image", "text", "label")},
        **{"image_key": "X", "text_key": "T", "label_key": "Y", "name": "mine"},
        **{"index_mat": str(tmp_path / "s.mat"), "train_index_key": "tr"},
        "query_index_key": "te",
    }
    (tmp_path / "dl").mkdir()
    import_features("dcmh_mat", tmp_path / "dl", tmp_path / "f.h5", opts)
    split = list(read_features(tmp_path / "f.h5").official_split)
    assert split == ["train"] * 6 + ["database"] * 2 + ["query"] * 2
    with pytest.raises(DatasetError, match=r"query_index_key and .*train_index_key share rows"):
        import_features(
            "dcmh_mat", tmp_path / "dl", tmp_path / "g.h5", {**opts, "query_index_key": "tr"}
        )
    (tmp_path / "s.mat").write_bytes(mat_bytes({"tr": train, "te": np.array([[0, 11]])}))
    with pytest.raises(
        DatasetError, match=r"s\.mat: te \(datasets\.mine\.query_index_key\) must hold"
    ):
        import_features("dcmh_mat", tmp_path / "dl", tmp_path / "g.h5", opts)
