"""The qualitative retrieval figure: top-k of fixed queries, thumbnails, relevant hits marked."""

from __future__ import annotations

import numpy as np
import pytest

from xmhash.codes import Codes, make_codeset, save_codes
from xmhash.data.demo_images import ImageDemoSpec, write_image_demo
from xmhash.data.prepared import read_prepared
from xmhash.features.store import Features, write_features
from xmhash.report.examples import IRRELEVANT, RELEVANT, query_rows, retrieval_examples, top_k


@pytest.fixture
def image_run(tmp_path):
    """A prepared image-caption dataset, its feature file and codes that follow the labels."""
    write_image_demo(tmp_path / "prepared", ImageDemoSpec(n_items=60, n_labels=6, n_query=12))
    p = read_prepared(tmp_path / "prepared")
    labels = p.label_matrix()
    rng = np.random.default_rng(0)
    feats = Features(
        ids=np.array([it.id for it in p.items]),
        labels=labels,
        image=rng.standard_normal((60, 8)).astype(np.float32),
        text=rng.standard_normal((60, 8)).astype(np.float32),
        label_names=p.label_names,
        texts=np.array([it.text for it in p.items]),
    )
    write_features(tmp_path / "f.h5", feats)
    proj = rng.standard_normal((6, 16))
    codes = np.where(labels @ proj + 0.3 * rng.standard_normal((60, 16)) >= 0, 1, -1)
    q, d = np.arange(12), np.arange(12, 60)

    def codeset(rows):
        return make_codeset(codes[rows], codes[rows], feats.ids[rows], rows)

    attrs = {"method": "vtmuch", "dataset": "toy", "seed": 0}
    save_codes(tmp_path / "codes.h5", Codes(16, codeset(q), codeset(d), attrs))
    return tmp_path, labels


def test_fixed_queries_and_the_evaluation_ranking():
    assert list(query_rows(100, 3)) == [0, 50, 99]
    assert list(query_rows(2, 3)) == [0, 1]
    q = np.packbits(np.array([[1] * 8], np.uint8), axis=1)
    db = np.packbits(np.array([[1] * 8, [0] * 8, [1] * 7 + [0]], np.uint8), axis=1)
    rows, dist = top_k(q, db, 2)
    assert rows.tolist() == [[0, 2]] and dist.tolist() == [[0, 1]]


def test_thumbnails_texts_and_relevant_hits_marked(image_run):
    path, labels = image_run
    fig = retrieval_examples(
        path / "codes.h5",
        path / "f.h5",
        str(path / "r.png"),
        prepared=path / "prepared",
        n_queries=2,
        k=3,
    )
    assert (path / "r.png").read_bytes()[:4] == b"\x89PNG"
    axes = np.array(fig.axes).reshape(4, 4)
    assert all(ax.images for ax in axes[:2, 0])  # I→T queries: image thumbnails
    assert not any(ax.images for ax in axes[:2, 1:].flat)  # their hits: texts
    assert all(ax.images for ax in axes[2:, 1:].flat)  # T→I hits: thumbnails
    assert "a photo of" in axes[2, 0].texts[0].get_text()  # T→I queries: the caption
    marked = 0
    for ax in axes[:, 1:].flat:
        title = ax.get_title()
        assert title[0] in "✓✗" and "d=" in title
        edge = ax.spines["top"].get_edgecolor()[:3]
        expected = RELEVANT if title[0] == "✓" else IRRELEVANT
        assert np.allclose(edge, tuple(int(expected[i : i + 2], 16) / 255 for i in (1, 3, 5)))
        marked += title[0] == "✓"
    assert marked > 0
    assert "VTM-UCH, 16 bits, seed 0" in fig._suptitle.get_text()


def test_a_hit_is_relevant_exactly_when_it_shares_a_label(image_run):
    from xmhash.codes import load_codes

    path, labels = image_run
    fig = retrieval_examples(path / "codes.h5", path / "f.h5", str(path / "r.pdf"), k=3)
    c = load_codes(path / "codes.h5")
    rows = query_rows(len(c.query.index), 3)
    hits, _ = top_k(c.query.image[rows], c.database.text, 3)
    axes = np.array(fig.axes).reshape(6, 4)
    for r, (q, row) in enumerate(zip(rows, hits, strict=True)):
        for col, h in enumerate(row, start=1):
            shares = bool((labels[c.query.index[q]] & labels[c.database.index[h]]).any())
            assert axes[r, col].get_title().startswith("✓" if shares else "✗")
