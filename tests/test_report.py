"""Report tables: ours beside published numbers."""

from __future__ import annotations

import pandas as pd

from xmhash.report.tables import beside_published, to_markdown


def ours() -> pd.DataFrame:
    rows = []
    for method, base in (("ucch", 0.70), ("lsh", 0.55)):
        for seed in (0, 1):
            for task in ("i2t", "t2i"):
                rows.append(
                    dict(
                        dataset="flickr",
                        variant="",
                        method=method,
                        bits=32,
                        seed=seed,
                        task=task,
                        metric="map@all",
                        value=base + 0.01 * seed,
                    )
                )
    rows.append(
        dict(
            dataset="flickr",
            variant="",
            method="chance",
            bits=32,
            seed=0,
            task="chance",
            metric="map@all",
            value=0.5,
        )
    )
    return pd.DataFrame(rows)


def published() -> pd.DataFrame:
    rows = [
        ("A 2022", "VGG", "map@all", "mirflickr", m, t, b, v)
        for m, v in (("UCCH", 0.74), ("CVH", 0.62))
        for t in ("i2t", "t2i")
        for b in (32, 64)
    ]
    rows.append(("B 2023", "CLIP", "map@all", "mirflickr", "UCCH", "i2t", 32, 0.80))
    rows.append(("A 2022", "VGG", "map@all", "nuswide", "UCCH", "i2t", 32, 0.66))
    return pd.DataFrame(
        rows, columns=["source", "features", "metric", "dataset", "method", "task", "bits", "value"]
    )


def test_published_rows_sit_beside_ours_one_table_per_source():
    tables = beside_published(ours(), published(), "flickr", "mirflickr", "map@all")
    assert [title.split(" beside ")[1].split(" (")[0] for title, _ in tables] == [
        "A 2022",
        "B 2023",
    ]
    title, table = tables[0]
    # our method, then the paper's row of the same method (VTM-UCH == vtmuch spelling rule)
    assert list(table.index) == ["ucch (ours)", "UCCH (published)", "lsh (ours)", "CVH (published)"]
    assert sorted({b for _, b in table.columns}) == [32, 64]  # union of both sides' bits
    assert table.loc["ucch (ours)", ("i2t", 32)][0] == 0.705  # mean over seeds
    assert table.loc["UCCH (published)", ("t2i", 64)][0] == 0.74
    assert not isinstance(table.loc["ucch (ours)", ("i2t", 64)], tuple)  # we ran no 64 bits
    assert "VGG" in title
    md = to_markdown(table, title)
    assert "| UCCH (published) | **0.740** |" in md  # the best of the column is bold


def test_no_published_rows_for_other_datasets_or_metrics():
    assert beside_published(ours(), published(), "flickr", "coco", "map@all") == []
    assert beside_published(ours(), published(), "flickr", "mirflickr", "map@50_djsrh") == []
