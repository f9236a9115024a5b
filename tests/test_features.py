"""The feature stage: encoders, extraction to HDF5, resume, corrupt images, GPU-path logic."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO
from host_syncs import host_syncs  # noqa: F401 (a fixture)

from xmhash.data.prepared import Item, read_prepared, write_prepared
from xmhash.features import extract as X
from xmhash.features.encoders import (
    EncoderNotFound,
    ImageTransform,
    autocast_dtype,
    load_encoder,
    use_pinned_memory,
)
from xmhash.features.extract import (
    CorruptImage,
    ExtractSettings,
    chunk_batches,
    extract_features,
    item_words,
    loader_options,
)
from xmhash.features.regions import RegionSettings, grid_boxes, prune_boxes
from xmhash.features.store import (
    Features,
    FeatureWriter,
    Ragged,
    partial_path,
    read_attrs,
    read_features,
)

ALL = ("image", "text", "texts", "words", "regions")
LABELS = ["sky", "tree", "water", "car"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dominated by thread start-up on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir):
    return load_encoder(str(tiny_clip_dir), device="cpu")


def make_prepared(root: Path, n: int = 23, *, seed: int = 0) -> Path:
    """A prepared dataset with generated images (various sizes) and texts."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = root / "images_src"
    images.mkdir(parents=True)
    items = []
    for i in range(n):
        h, w = (int(x) for x in rng.integers(20, 60, size=2))
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ext = "png" if i % 3 else "jpg"
        Image.fromarray(arr).save(images / f"{i}.{ext}")
        labels = sorted(rng.choice(len(LABELS), size=int(rng.integers(1, 3)), replace=False))
        tags = [LABELS[j] for j in labels] + (["blue sky"] if i % 4 == 1 else [])
        text = " ".join(tags) if i % 5 else "a very long caption " * 3  # > 16 tokens
        items.append(
            Item(
                id=f"it{i:03d}",
                image=f"{i}.{ext}",
                text=text,
                labels=[int(x) for x in labels],
                split="query" if i < 5 else "database",
                tags=tags if i % 2 else None,
            )
        )
    meta = {"dataset": "toy", "label_names": LABELS, "image_root": "images", "text_kind": "tags"}
    out = root / "prepared"
    write_prepared(out, items, meta, files={"images": images})
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prep"))


SETTINGS = ExtractSettings(
    batch_size=4, chunk_items=8, workers=0, words="tags", regions=RegionSettings(mode="grid")
)


@pytest.fixture(scope="module")
def extracted(prepared, encoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("feat") / "tiny.h5"
    assert extract_features(prepared, encoder, out, SETTINGS, encoder_key="tiny") == out
    return out


# ---------------------------------------------------------------- encoders


def test_encoder_loads_from_a_saved_directory_and_normalises(encoder, tiny_clip_dir, prepared):
    prep = read_prepared(prepared)
    texts = [it.text for it in prep.items[:5]]
    t = encoder.encode_texts(texts, batch_size=2)
    paths = [prep.image_path(it) for it in prep.items[:5]]
    v = encoder.encode_images([str(p) for p in paths], batch_size=3)
    assert t.shape == v.shape == (5, encoder.dim) and t.dtype == v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-5)
    from PIL import Image

    pil = [Image.open(p) for p in paths]
    np.testing.assert_allclose(encoder.encode_images(pil), v, atol=1e-5)  # paths == PIL
    assert encoder.attrs["id"] == str(tiny_clip_dir)
    assert encoder.attrs["revision"].startswith("sha256:")
    assert encoder.attrs["preprocessing"]["text"]["max_tokens"] == 16


def test_registry_keys_and_extra_keys(tiny_clip_dir):
    from xmhash.features.encoders import ENCODERS, resolve_encoder

    assert resolve_encoder("vitb32") == "openai/clip-vit-base-patch32"
    assert {"vitb16", "vitl14"} <= set(ENCODERS)
    assert resolve_encoder("tiny", {"tiny": str(tiny_clip_dir)}) == str(tiny_clip_dir)
    enc = load_encoder("tiny", device="cpu", extra={"tiny": str(tiny_clip_dir)})
    assert enc.attrs["key"] == "tiny" and enc.attrs["id"] == str(tiny_clip_dir)


def test_missing_weights_offline_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(EncoderNotFound) as err:
        load_encoder("nope", device="cpu", extra={"nope": "xmhash-tests/no-such-clip"})
    msg = str(err.value)
    assert "xmhash-tests/no-such-clip" in msg and "HF_HUB_OFFLINE" in msg
    assert "hf download" in msg and "features.encoders" in msg


def test_missing_local_directory_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderNotFound, match="empty"):
        load_encoder(str(tmp_path / "empty"), device="cpu")


def test_image_transform_matches_the_transformers_processor(tiny_clip_dir, rng):
    from PIL import Image
    from transformers import AutoImageProcessor

    proc = AutoImageProcessor.from_pretrained(str(tiny_clip_dir))
    ours = ImageTransform.from_processor(proc)
    images = [
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        for h, w in [(40, 57), (90, 33), (32, 32)]
    ]
    ref = proc(images=images, return_tensors="pt")["pixel_values"]
    mine = ours.normalise(torch.stack([ours(im) for im in images]))  # uint8 until the device
    torch.testing.assert_close(mine, ref, atol=1e-5, rtol=0)


def test_texts_are_truncated_to_the_model_limit_and_counted(encoder):
    tok = encoder.tokenizer
    batch = tok(["sky", "x" * 40, "tree water"])
    assert batch.truncated.tolist() == [False, True, False]
    assert batch.input_ids.shape[1] == tok.max_length
    row = batch.input_ids[1]
    assert row[0] == tok.bos and row[-1] == tok.eos
    # padding is masked out; the short row ends with EOS at its own length
    n0 = int(batch.attention_mask[0].sum())
    assert batch.input_ids[0, n0 - 1] == tok.eos and batch.attention_mask[0, n0:].sum() == 0


def test_gpu_path_decisions_are_right_without_a_gpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "fp16") is None
    assert autocast_dtype(cuda, "auto", bf16_supported=True) is torch.bfloat16
    assert autocast_dtype(cuda, "auto", bf16_supported=False) is torch.float16
    assert autocast_dtype(cuda, "fp16", bf16_supported=True) is torch.float16
    assert autocast_dtype(cuda, "fp32", bf16_supported=True) is None
    with pytest.raises(ValueError, match="bfloat16"):
        autocast_dtype(cuda, "bf16", bf16_supported=False)
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype(cuda, "int8", bf16_supported=True)
    assert use_pinned_memory(cuda) and not use_pinned_memory(cpu)
    assert loader_options(2, True) == {
        "num_workers": 2,
        "pin_memory": True,
        "prefetch_factor": 2,
        "persistent_workers": False,
    }
    assert loader_options(0, False) == {"num_workers": 0, "pin_memory": False}


# ---------------------------------------------------------------- extraction


def test_chunk_batches_never_straddle_a_chunk():
    batches = chunk_batches(3, 23, batch_size=4, chunk_items=8)
    assert [i for b in batches for i in b] == list(range(3, 23))
    for b in batches:
        assert (b[0] - 3) // 8 == (b[-1] - 3) // 8 and len(b) <= 4


def test_feature_file_has_every_part(extracted, prepared, encoder):
    prep = read_prepared(prepared)
    f = read_features(extracted, parts=ALL)
    n = len(prep.items)
    assert list(f.ids) == [it.id for it in prep.items]
    np.testing.assert_array_equal(f.labels, prep.label_matrix())
    assert f.label_names == LABELS
    assert list(f.official_split) == [it.split for it in prep.items]
    assert list(f.texts) == [it.text for it in prep.items]
    # global embeddings equal the public API's
    np.testing.assert_allclose(
        f.image, encoder.encode_images([str(prep.image_path(it)) for it in prep.items]), atol=1e-5
    )
    np.testing.assert_allclose(f.text, encoder.encode_texts(list(f.texts)), atol=1e-5)
    # words: each tag (or whitespace word) alone, item -> words offsets
    assert f.words.offsets.shape == (n + 1,)
    for i, it in enumerate(prep.items):
        assert list(f.words.names[f.words.offsets[i] : f.words.offsets[i + 1]]) == item_words(
            it, "tags"
        )
    k = list(f.words.names).index("blue sky")
    np.testing.assert_allclose(
        f.words.embeddings[k], encoder.encode_texts(["blue sky"])[0], atol=1e-5
    )
    # regions: 2x2 grid crops then the whole image, whose embedding is the global one
    assert (f.regions.counts() == 5).all()
    from PIL import Image

    for i in (0, 7):
        rows = f.regions.rows(i)
        boxes = f.regions.boxes[f.regions.offsets[i] : f.regions.offsets[i + 1]]
        np.testing.assert_allclose(rows[-1], f.image[i], atol=1e-6)
        im = Image.open(prep.image_path(prep.items[i])).convert("RGB")
        assert boxes[-1].tolist() == [0, 0, im.width, im.height]
        crop = encoder.encode_images([im.crop(tuple(boxes[1].tolist()))])[0]
        np.testing.assert_allclose(rows[1], crop, atol=1e-5)
    attrs = read_attrs(extracted)
    assert attrs["encoder"] == "tiny" and attrs["encoder_id"] == encoder.attrs["id"]
    assert attrs["encoder_revision"] == encoder.attrs["revision"]
    assert attrs["preprocessing"]["image"]["center_crop"] == [32, 32]
    assert attrs["texts_truncated"] == sum(len(it.text) > 16 for it in prep.items) > 0
    assert attrs["text_max_tokens"] == 16 and attrs["image_dim"] == encoder.dim


def test_file_is_chunked_compressed_and_plain_h5py(extracted):
    with h5py.File(extracted, "r") as f:
        for name in ("image", "text", "ids", "words/embeddings", "regions/boxes"):
            assert f[name].chunks is not None and f[name].compression == "gzip", name
        assert f["image"].dtype == np.float32 and f["regions/offsets"].dtype == np.int64
        assert "_resume" not in f.attrs
    assert not partial_path(extracted).exists()


def test_worker_processes_give_the_same_file(extracted, prepared, encoder, tmp_path):
    out = tmp_path / "w.h5"
    settings = ExtractSettings(**{**SETTINGS.__dict__, "workers": 1, "chunk_items": 12})
    extract_features(prepared, encoder, out, settings)
    a, b = read_features(extracted, parts=ALL), read_features(out, parts=ALL)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)
    np.testing.assert_allclose(a.regions.embeddings, b.regions.embeddings, atol=1e-6)
    np.testing.assert_array_equal(a.words.offsets, b.words.offsets)


def test_bpe_words_embed_each_token_alone(prepared, encoder, tmp_path):
    out = tmp_path / "bpe.h5"
    settings = ExtractSettings(batch_size=8, chunk_items=64, workers=0, words="bpe")
    extract_features(prepared, encoder, out, settings)
    f = read_features(out, parts=("words",))
    prep = read_prepared(prepared)
    tok = encoder.tokenizer
    ids = tok.content_ids([prep.items[1].text])[0][: tok.max_length - 2]
    rows = f.words.rows(1)
    assert len(rows) == len(ids)
    alone = encoder.forward_tokens(tok.from_ids([[ids[0]]]))[0]
    np.testing.assert_allclose(rows[0], alone, atol=1e-5)
    assert read_features(out).regions is None


# ---------------------------------------------------------------- resume


class Interrupt(RuntimeError):
    pass


def test_killed_run_resumes_without_recomputing(
    prepared, encoder, extracted, tmp_path, monkeypatch
):
    out = tmp_path / "r.h5"
    real_append = FeatureWriter.append
    calls = {"n": 0}

    def flaky_append(self, chunk, **kw):
        if calls["n"] == 2:
            raise Interrupt("killed")
        calls["n"] += 1
        real_append(self, chunk, **kw)

    monkeypatch.setattr(FeatureWriter, "append", flaky_append)
    with pytest.raises(Interrupt):
        extract_features(prepared, encoder, out, SETTINGS)
    assert not out.exists() and partial_path(out).exists()
    monkeypatch.setattr(FeatureWriter, "append", real_append)

    seen: list[int] = []
    real_forward = encoder.forward_pixels
    monkeypatch.setattr(
        encoder, "forward_pixels", lambda px: seen.append(len(px)) or real_forward(px)
    )
    monkeypatch.setattr(X, "_encode", _spy(X._encode, seen_items := []))
    extract_features(prepared, encoder, out, SETTINGS)
    first = [i for batch in seen_items for i in batch]
    assert first == list(range(16, 23))  # chunks 0 and 1 (items 0-15) were not recomputed
    assert sum(seen) == 7 * 5  # images through the model: 7 items x (whole + 4 grid crops)
    assert not partial_path(out).exists()
    a, b = read_features(extracted, parts=ALL), read_features(out, parts=ALL)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)
    np.testing.assert_array_equal(a.regions.offsets, b.regions.offsets)
    np.testing.assert_array_equal(a.words.names, b.words.names)
    assert read_attrs(out)["texts_truncated"] == read_attrs(extracted)["texts_truncated"]


def _spy(fn, log):
    def wrapped(batch, *args, **kwargs):
        log.append(batch.index.tolist())
        return fn(batch, *args, **kwargs)

    return wrapped


def test_a_chunk_cut_short_by_a_kill_is_redone_alone(
    prepared, encoder, extracted, tmp_path, monkeypatch
):
    out = tmp_path / "u.h5"
    assert extract_features(prepared, encoder, out, SETTINGS, max_chunks=1) is None
    partial = partial_path(out)
    committed = partial / "chunk-000000.h5"
    half = committed.read_bytes()[: committed.stat().st_size // 2]
    (partial / ".chunk-000001.h5.k1ll3d00.partial").write_bytes(half)  # killed mid-write
    monkeypatch.setattr(X, "_encode", _spy(X._encode, seen := []))
    extract_features(prepared, encoder, out, SETTINGS)
    assert seen[0][0] == 8  # chunk 0 kept, chunk 1 on
    a, b = read_features(extracted), read_features(out)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)
    assert not partial.exists()


def test_a_damaged_chunk_is_detected_and_redone_with_those_after_it(
    prepared, encoder, extracted, tmp_path, caplog, monkeypatch
):
    out = tmp_path / "d.h5"
    assert extract_features(prepared, encoder, out, SETTINGS, max_chunks=2) is None
    damaged = partial_path(out) / "chunk-000001.h5"
    with h5py.File(damaged, "r") as f:  # bytes of a compressed chunk, as a write
        info = f["image"].id.get_chunk_info(0)  # cut short by a full disk leaves them
    with open(damaged, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xaa" * 16)
    monkeypatch.setattr(X, "_encode", _spy(X._encode, seen := []))
    with caplog.at_level("WARNING", logger="xmhash.features.store"):
        extract_features(prepared, encoder, out, SETTINGS)
    assert "damaged chunk 1" in caplog.text and "from item 8" in caplog.text
    assert seen[0][0] == 8  # chunk 0 was kept
    a, b = read_features(extracted, parts=ALL), read_features(out, parts=ALL)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.image, b.image, atol=1e-6)
    np.testing.assert_allclose(a.regions.embeddings, b.regions.embeddings, atol=1e-6)


@pytest.mark.slow
def test_kills_at_random_instants_lose_at_most_one_chunk(encoder, tmp_path):
    """SIGKILL at 8 random instants (benchmarks/feature_kills.py does 20 and prints the
    table): each kill makes the next run redo at most the chunk it interrupted, and the
    finished file is the uninterrupted run's."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from feature_kills import kill_runs  # benchmarks/feature_kills.py

    prepared = make_prepared(tmp_path / "many", n=240, seed=2)
    work = tmp_path / "work"
    work.mkdir()
    kills, same, starts_over = kill_runs(
        encoder, prepared, work, chunk_items=8, kills=8, window=1.5, seed=1
    )
    assert sum(k.resumed_at >= 0 for k in kills) >= 4  # most kills came after the start
    assert max(k.redone for k in kills) <= 8, kills
    assert same and starts_over == 0


def test_partial_file_from_other_settings_is_not_reused(prepared, encoder, tmp_path):
    out = tmp_path / "s.h5"
    assert extract_features(prepared, encoder, out, SETTINGS, max_chunks=1) is None
    other = ExtractSettings(batch_size=4, chunk_items=8, workers=0, words="none")
    extract_features(prepared, encoder, out, other)
    f = read_features(out)
    assert len(f) == 23 and f.words is None
    with pytest.raises(Exception, match="words"):
        read_features(out, parts=("words",))


# ---------------------------------------------------------------- bad input


@pytest.fixture
def corrupt_prepared(tmp_path) -> Path:
    root = make_prepared(tmp_path, n=10, seed=1)
    prep = read_prepared(root)
    prep.image_path(prep.items[3]).write_bytes(b"not an image at all")
    prep.image_path(prep.items[6]).unlink()
    return root


def test_corrupt_image_is_an_error_naming_it(corrupt_prepared, encoder, tmp_path):
    out = tmp_path / "c.h5"
    with pytest.raises(CorruptImage) as err:
        extract_features(corrupt_prepared, encoder, out, SETTINGS)
    assert "it003" in str(err.value) and "images/3.jpg" in str(err.value)
    assert "skip_corrupt" in str(err.value)
    assert not out.exists()


def test_corrupt_images_skipped_and_listed(corrupt_prepared, encoder, tmp_path):
    out = tmp_path / "c.h5"
    settings = ExtractSettings(**{**SETTINGS.__dict__, "skip_corrupt": True})
    extract_features(corrupt_prepared, encoder, out, settings)
    f = read_features(out, parts=ALL)
    prep = read_prepared(corrupt_prepared)
    keep = [i for i in range(10) if i not in (3, 6)]
    assert f.skipped == ["it003", "it006"]
    assert list(f.ids) == [prep.items[i].id for i in keep]
    np.testing.assert_array_equal(f.labels, prep.label_matrix()[keep])
    assert f.words.offsets.shape == f.regions.offsets.shape == (len(keep) + 1,)
    np.testing.assert_allclose(f.regions.rows(3)[-1], f.image[3], atol=1e-6)


def test_nan_embeddings_are_an_error(prepared, tiny_clip_dir, tmp_path):
    enc = load_encoder(str(tiny_clip_dir), device="cpu")
    with torch.no_grad():
        enc.model.visual_projection.weight[0, 0] = float("nan")
    out = tmp_path / "nan.h5"
    with pytest.raises(FloatingPointError, match="NaN"):
        extract_features(prepared, enc, out, SETTINGS)
    assert not out.exists()


# ---------------------------------------------------------------- store round trip


def test_writer_round_trip(tmp_path, rng):
    out = tmp_path / "rt.h5"
    w = FeatureWriter(out, fingerprint="x", n_labels=3, image_dim=4, text_dim=5, words=True)
    chunks = []
    for c in range(3):
        n = 4 - c
        counts = rng.integers(0, 3, size=n)
        total = int(counts.sum())
        chunk = Features(
            ids=np.array([f"c{c}i{i}" for i in range(n)], dtype=object),
            labels=rng.integers(0, 2, size=(n, 3)).astype(np.uint8),
            image=rng.standard_normal((n, 4)).astype(np.float32),
            text=rng.standard_normal((n, 5)).astype(np.float32),
            texts=np.array([f"text {i} é" for i in range(n)], dtype=object),
            official_split=np.array(["query"] * n, dtype=object),
            words=Ragged(
                embeddings=rng.standard_normal((total, 5)).astype(np.float32),
                offsets=np.concatenate([[0], np.cumsum(counts)]),
                names=np.array([f"w{j}" for j in range(total)], dtype=object),
            ),
            skipped=[f"bad{c}"] if c == 1 else [],
        )
        w.append(chunk, consumed=10 * (c + 1), texts_truncated=c)
        chunks.append(chunk)
    w.finish(label_names=["a", "b", "c"], attrs={"encoder": "k", "preprocessing": {"x": [1]}})
    f = read_features(out, parts=ALL[:4])
    assert list(f.ids) == [i for c in chunks for i in c.ids]
    np.testing.assert_array_equal(f.image, np.concatenate([c.image for c in chunks]))
    np.testing.assert_array_equal(f.labels, np.concatenate([c.labels for c in chunks]))
    assert f.texts[0] == "text 0 é" and f.skipped == ["bad1"]
    for ci, c in enumerate(chunks):
        base = sum(len(x) for x in chunks[:ci])
        for i in range(len(c)):
            np.testing.assert_array_equal(f.words.rows(base + i), c.words.rows(i))
    assert f.attrs["texts_truncated"] == 3 and f.attrs["preprocessing"] == {"x": [1]}
    assert f.attrs["text_dim"] == 5 and "_resume" not in f.attrs


# ---------------------------------------------------------------- regions


def test_grid_boxes_tile_the_image():
    boxes = grid_boxes(30, 20, 3)
    assert boxes.shape == (9, 4)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
    assert area == pytest.approx(600)


def test_prune_boxes_keeps_the_first_of_near_duplicates():
    boxes = np.array(
        [[0, 0, 50, 50], [5, 5, 55, 45], [0, 0, 3, 40], [20, 0, 80, 50], [0, 0, 50, 50]],
        np.float32,
    )
    kept = prune_boxes(boxes, prune_px=15, max_boxes=10, min_size=8)
    assert kept.tolist() == [[0, 0, 50, 50], [20, 0, 80, 50]]
    assert len(prune_boxes(boxes, prune_px=0, max_boxes=2, min_size=1)) == 2


def test_detector_regions(prepared, encoder, tiny_detector_dir, tmp_path):
    regions = RegionSettings(
        mode="detector", detector=str(tiny_detector_dir), threshold=0.0, max_boxes=3, min_size=1
    )
    settings = ExtractSettings(
        batch_size=8, chunk_items=64, workers=0, words="none", regions=regions
    )
    out = tmp_path / "det.h5"
    extract_features(prepared, encoder, out, settings)
    f = read_features(out, parts=("image", "regions"))
    counts = f.regions.counts()
    assert ((counts >= 1) & (counts <= 4)).all() and counts.sum() > len(f)
    for i in range(len(f)):
        np.testing.assert_allclose(f.regions.rows(i)[-1], f.image[i], atol=1e-6)
    b = f.regions.boxes
    assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
    assert read_attrs(out)["regions"]["mode"] == "detector"


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="features.words"):
        ExtractSettings(words="letters")
    with pytest.raises(ValueError, match="regions.mode"):
        RegionSettings(mode="sam")


def test_progress_counts_items_of_batches(monkeypatch, capsys):
    from xmhash.log import progress

    monkeypatch.setenv("XMHASH_PROGRESS", "1")
    batches = [[1, 2, 3], [4, 5], [6]]
    got = list(progress(batches, desc="features", total=8, unit="item", initial=2, size=len))
    assert got == batches
    err = capsys.readouterr().err
    assert "8/8" in err and "item/s" in err


def test_owlv2_boxes_are_scaled_to_the_padded_square():
    from xmhash.features.regions import target_sizes

    assert target_sizes([(30, 50), (80, 20)], pads_to_square=True) == [(50, 50), (80, 80)]
    assert target_sizes([(30, 50)], pads_to_square=False) == [(30, 50)]


def test_zero_shot_detector_regions(prepared, encoder, tmp_path):
    from helpers.tiny_models import save_owlv2

    regions = RegionSettings(
        mode="detector",
        detector=str(save_owlv2(tmp_path / "owl")),
        queries=("a shape", "a thing"),
        threshold=0.0,
        max_boxes=2,
        min_size=1,
    )
    settings = ExtractSettings(
        batch_size=8, chunk_items=64, workers=0, words="none", regions=regions
    )
    out = tmp_path / "owl.h5"
    extract_features(prepared, encoder, out, settings)
    f = read_features(out, parts=("image", "regions"))
    counts = f.regions.counts()
    assert ((counts >= 1) & (counts <= 3)).all() and counts.sum() > len(f)
    np.testing.assert_allclose(f.regions.rows(2)[-1], f.image[2], atol=1e-6)


def test_runtime_settings_come_from_the_config_and_are_not_params(tiny_clip_dir, monkeypatch):
    from xmhash.features.settings import content_settings, encoder_identity

    features = {"workers": 0, "batch_size": 3, "chunk_items": 6, "device": "cpu", "words": "none"}
    features["encoders"] = {"tiny": str(tiny_clip_dir)}
    assert content_settings(features) == {"words": "none"}  # what the rule reruns on
    seen = {}
    monkeypatch.setattr(
        X, "extract_features", lambda prep, enc, out, opts, **kw: seen.update(opts=opts, enc=enc)
    )
    X.run_features(
        prepared="p",
        out="o.h5",
        encoder="tiny",
        settings=content_settings(features),
        config={"device": "cuda", "features": features},  # features.device wins
    )
    opts = seen["opts"]
    assert (opts.workers, opts.batch_size, opts.chunk_items, opts.words) == (0, 3, 6, "none")
    assert seen["enc"].device.type == "cpu"
    assert seen["enc"].attrs["revision"] == encoder_identity("tiny", features["encoders"])
    assert encoder_identity("vitb32") == "openai/clip-vit-base-patch32"


def test_local_encoder_digest_follows_the_weights_not_the_cache(tiny_clip_dir, tmp_path):
    import shutil
    import time

    from xmhash.features.settings import local_digest

    enc = shutil.copytree(tiny_clip_dir, tmp_path / "enc")
    cache = tmp_path / "cache/digests.json"
    first = local_digest(enc, cache)
    assert local_digest(enc, cache) == first == local_digest(enc)  # cached = computed
    weights = next(p for p in enc.iterdir() if p.suffix in (".safetensors", ".bin"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    time.sleep(0.01)
    weights.write_bytes(bytes(data))
    assert local_digest(enc, cache) != first and local_digest(enc, cache) == local_digest(enc)
    shutil.move(enc, tmp_path / "moved")  # moving the directory keeps its identity
    assert local_digest(tmp_path / "moved", cache) == local_digest(tmp_path / "moved")


# ---------------------------------------------------------------- decoding and the device


def _photo_jpegs(root: Path, n: int, size: tuple[int, int] = (500, 375)) -> Path:
    """A prepared dataset of generated scenes saved as MIRFlickr-sized JPEGs."""
    from PIL import Image

    from xmhash.data.demo_images import ImageDemoSpec, write_image_demo

    spec = ImageDemoSpec(n_items=n, n_labels=6, max_labels=2, image_size=size[1], n_query=1)
    write_image_demo(root, spec)
    for p in (root / "images").iterdir():
        Image.open(p).resize(size).save(p, "JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return _photo_jpegs(tmp_path_factory.mktemp("photos") / "prepared", 12)


def test_workers_hand_over_uint8_and_the_device_normalises_as_before(photos, encoder):
    prep = read_prepared(photos)
    items = X._Items(
        [str(prep.image_path(it)) for it in prep.items], encoder.transform, SETTINGS.regions
    )
    sample = items[0]
    assert sample["pixels"].dtype == torch.uint8 and sample["crops"][0].dtype == torch.uint8
    pixels = torch.stack([items[i]["pixels"] for i in range(4)])
    # the float pixels the workers used to send: scaled and normalised on the host
    mean = torch.tensor(encoder.transform.mean).view(3, 1, 1)
    std = torch.tensor(encoder.transform.std).view(3, 1, 1)
    before = pixels.float().div(255.0).sub(mean).div(std)
    assert torch.equal(encoder.forward_pixels(pixels), encoder.forward_pixels(before))


def test_draft_decodes_a_jpeg_at_a_reduced_scale_never_below_the_target(photos, encoder, tmp_path):
    from PIL import Image

    path = next((photos / "images").iterdir())
    small = encoder.transform  # 32 px: 1/8 of 500 x 375 still covers 42 x 32
    image, size = small.open(path)
    assert size == (500, 375) and image.size == (63, 47)
    image, _ = small.open(path, pieces=2)  # each of 2 x 2 tiles must cover 42 x 32
    assert image.size == (125, 94)
    full = ImageTransform(224, (224, 224), small.mean, small.std)  # ViT-B/32's 224 px
    assert full.open(path)[0].size == (500, 375)  # 1/2 scale (250 x 188) would fall below
    off = ImageTransform(32, (32, 32), small.mean, small.std, draft=False)
    assert off.open(path)[0].size == (500, 375)
    png = tmp_path / "x.png"
    Image.open(path).save(png)
    assert small.open(png)[0].size == (500, 375)  # only JPEGs have DCT scaling


def test_drafted_features_agree_with_full_decoding(photos, tiny_clip_dir, tmp_path):
    """Draft decoding changes pixels slightly; the embeddings of whole images and grid
    tiles keep a cosine of at least 0.99 with those of full decoding (the tiny CLIP at
    32 px, where 500 x 375 JPEGs are decoded at 1/8 and 1/4 scale)."""
    files = {}
    for draft in (False, True):
        enc = load_encoder(str(tiny_clip_dir), device="cpu", draft=draft)
        files[draft] = read_features(
            extract_features(photos, enc, tmp_path / f"{draft}.h5", SETTINGS), parts=ALL
        )
        assert read_attrs(tmp_path / f"{draft}.h5")["preprocessing"]["image"]["jpeg_draft"] is draft
    full, drafted = files[False], files[True]
    for a, b in (
        (full.image, drafted.image),
        (full.regions.embeddings, drafted.regions.embeddings),
    ):
        cosine = (a * b).sum(axis=1)  # rows are L2-normalised
        assert cosine.min() >= 0.99, cosine.min()
    np.testing.assert_array_equal(full.regions.boxes, drafted.regions.boxes)  # the file's pixels
    np.testing.assert_array_equal(full.text, drafted.text)


def test_a_chunk_comes_back_from_the_device_in_one_copy(prepared, encoder, tmp_path, host_syncs):  # noqa: F811
    counts = []
    for batch_size in (8, 2):  # 1 and 4 batches per chunk of 8
        host_syncs.calls.clear()
        settings = ExtractSettings(
            batch_size=batch_size,
            chunk_items=8,
            workers=0,
            words="none",
            regions=RegionSettings(mode="grid"),
        )
        extract_features(prepared, encoder, tmp_path / f"{batch_size}.h5", settings)
        counts.append(len(host_syncs.calls))
    assert counts[0] == counts[1] == 3, host_syncs.calls  # 23 items: 3 chunks, 1 copy each


def test_threads_workers_and_batch_follow_the_device():
    from xmhash.features.settings import job_threads, stage_sizes

    auto: dict = {}
    assert job_threads(auto, cuda=False, cpu_count=64) == 2
    assert job_threads(auto, cuda=True, cpu_count=64) == 16  # the node, up to max_threads
    assert job_threads(auto, cuda=True, cpu_count=8) == 8
    assert job_threads({"max_threads": 32}, cuda=True, cpu_count=64) == 32
    assert job_threads({"threads": 5}, cuda=True, cpu_count=64) == 5
    assert stage_sizes(auto, cuda=False, threads=2) == {"workers": 2, "batch_size": 64}
    assert stage_sizes(auto, cuda=True, threads=16) == {"workers": 15, "batch_size": 256}
    assert stage_sizes({"workers": 0, "batch_size": 8}, cuda=True, threads=16) == {
        "workers": 0,
        "batch_size": 8,
    }


def test_the_job_sizes_itself_to_its_threads(tiny_clip_dir, monkeypatch):
    from xmhash.features.settings import content_settings

    features = {"device": "cpu", "words": "none", "encoders": {"tiny": str(tiny_clip_dir)}}
    seen = {}
    monkeypatch.setattr(
        X, "extract_features", lambda prep, enc, out, opts, **kw: seen.update(opts=opts)
    )
    X.run_features(
        prepared="p",
        out="o.h5",
        encoder="tiny",
        settings=content_settings(features),
        config={"features": features},
        threads=3,
    )
    assert (seen["opts"].workers, seen["opts"].batch_size) == (3, 64)
    assert torch.get_num_threads() == 3


def _pil_decode(data, device):
    """A stand-in for torchvision's decode_jpeg (not installed here): PIL, same output."""
    import io

    from PIL import Image

    arrays = [np.asarray(Image.open(io.BytesIO(d.numpy().tobytes())).convert("RGB")) for d in data]
    return [torch.from_numpy(a.copy()).permute(2, 0, 1).to(device) for a in arrays]


def test_device_resizing_agrees_with_pil(photos, encoder):
    from PIL import Image

    path = next((photos / "images").iterdir())
    image = Image.open(path).convert("RGB")
    for edge in (32, 224):
        t = ImageTransform(edge, (edge, edge), encoder.transform.mean, encoder.transform.std)
        pil = t(image).int()
        mine = t.resize_tensor(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)).int()
        assert mine.shape == pil.shape
        assert (mine - pil).abs().float().mean() < 1.5  # mean |difference|, of 255 levels


def test_gpu_decoding_gives_the_features_of_cpu_decoding(
    photos, prepared, tiny_clip_dir, tmp_path, monkeypatch
):
    """decode: gpu's own steps (bytes from the workers, one batched decode, resizing and
    grid tiles on the device), with PIL standing in for nvJPEG on this CPU-only machine."""
    monkeypatch.setattr(X, "decode_jpegs", _pil_decode)
    monkeypatch.setattr(X, "check_decoder", lambda settings, device: None)
    enc = load_encoder(str(tiny_clip_dir), device="cpu", draft=False)
    for data in (photos, prepared):  # JPEGs only; PNGs and JPEGs mixed
        runs = {}
        for decode in ("cpu", "gpu"):
            settings = ExtractSettings(**{**SETTINGS.__dict__, "decode": decode})
            out = extract_features(
                data, enc, tmp_path / f"{data.parent.name}-{decode}.h5", settings
            )
            runs[decode] = read_features(out, parts=ALL)
        cpu, gpu = runs["cpu"], runs["gpu"]
        assert (cpu.image * gpu.image).sum(axis=1).min() >= 0.98
        assert (cpu.regions.embeddings * gpu.regions.embeddings).sum(axis=1).min() >= 0.98
        np.testing.assert_array_equal(cpu.regions.boxes, gpu.regions.boxes)


def test_gpu_decoding_needs_a_cuda_device(prepared, encoder, tmp_path):
    settings = ExtractSettings(**{**SETTINGS.__dict__, "decode": "gpu"})
    with pytest.raises(ValueError, match="features.device: cuda"):
        extract_features(prepared, encoder, tmp_path / "x.h5", settings)
    with pytest.raises(ValueError, match="features.decode"):
        ExtractSettings(decode="nvjpeg")
