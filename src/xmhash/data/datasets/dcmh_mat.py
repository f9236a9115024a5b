"""Precomputed DCMH-lineage ``.mat`` files (jiangqy/DCMH-CVPR2017; DJSRH, JDSH, UCCH, ...).

One array per file, e.g. ``mirflickr25k-iall-vgg.mat`` (``XAll``, (N, 4096)),
``mirflickr25k-yall.mat`` (``YAll``, (N, 1386) tag bag of words) and
``mirflickr25k-lall.mat`` (``LAll``, (N, 24)); v5 or v7.3 (HDF5) files. They are shared
through cloud drives, not a fetchable URL, so the user sets their paths
(``image_mat``/``image_key``, ``text_mat``/``text_key``, ``label_mat``/``label_key``).

With feature arrays (``XAll``), ``encoder: mat`` imports them as the feature file of
encoder key ``mat``: image features, text features (bag of words as float32), multi-hot
labels; rows are items, in file order. ``official_query: Q`` records the official split
of the UCCH code (``src/cmdataset.py``, the ``*_fea`` loaders): the last Q rows are the
queries (2,000 for MIRFlickr and IAPR, 2,100 for NUS-WIDE, 5,000 for MS-COCO) and every
other row is a retrieval item and a training item; with ``split: {official: true, train:
all, val_from: train}`` the split trains on all of them (18,015 for MIRFlickr) and selects
the epoch on the first ``val`` of them, as that code does. A file that stores its split as
index vectors names them instead: ``train_index_key`` and ``query_index_key`` (field paths in
``index_mat``, by default the label file; MATLAB's 1-based indices or 0/1 masks) mark the
training rows ``train`` and the queries ``query``; every other row is ``database``.

With the raw-pixel array (``mirflickr25k-iall.mat``, ``IAll``: a v7.3 file that h5py reads
as (N, 3, W, H) uint8, i.e. MATLAB's (H, W, 3, N); DJSRH transposes each image (2, 1, 0)
to H x W x 3), ``prepare`` writes a prepared dataset instead, so any encoder can embed
it: every image as a lossless PNG, the text as the words of the item's bag-of-words row
(column j = line j of ``vocabulary``: a file, or ``mirflickr25k`` for the standard 1,386
tags), the labels from the label array. Images are read one at a time (IAll is ~3 GB).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import DatasetError, Source, require, setting, workdir
from xmhash.data.datasets.matfile import (
    class_ids_to_multihot,
    declared_layout,
    load_mat,
    take,
    transposed_hint,
)
from xmhash.data.prepared import Item, write_prepared

ENCODER = "mat"


def _array(options: dict[str, Any], part: str) -> tuple[np.ndarray, Path]:
    path, key = options.get(f"{part}_mat"), options.get(f"{part}_key")
    if not path or not key:
        raise DatasetError(
            f"config.yaml: datasets.<name>.{part}_mat and {part}_key must name "
            f"the .mat file and its array (e.g. {_EXAMPLE[part]})"
        )
    path = Path(path).expanduser()
    arr = take(load_mat(path), path, key, ndim=None, **declared_layout(options, f"{part}_layout"))
    if part == "label" and arr.shape[0] == 1 and arr.ndim == 2:
        arr = arr.reshape(-1)  # a row vector of class ids
    if part != "label" and arr.ndim != 2:
        raise DatasetError(
            f"{path}: {key} has shape {arr.shape}, expected (N, D) features"
            + (
                "; a raw-pixel array is not features: use a CLIP encoder key, so that "
                "the prepare rule writes its images"
                if arr.ndim == 4
                else ""
            )
        )
    return arr, path


_EXAMPLE = {
    "image": "mirflickr25k-iall-vgg.mat / XAll",
    "text": "mirflickr25k-yall.mat / YAll",
    "label": "mirflickr25k-lall.mat / LAll",
}


def import_features(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from xmhash.features.store import Features, write_features

    image, ipath = _array(options, "image")
    text, tpath = _array(options, "text")
    raw_labels, lpath = _array(options, "label")
    labels = class_ids_to_multihot(raw_labels, lpath, options["label_key"])
    parts = ((image, ipath, "image"), (text, tpath, "text"), (labels, lpath, "label"))
    counts = [arr.shape[0] for arr, _, _ in parts]
    n = max(counts, key=counts.count)  # the rows most files agree on; blame the odd one
    for arr, path, part in parts:
        if arr.shape[0] != n:
            flipped = arr.ndim == 2 and arr.shape[1] == n
            raise DatasetError(
                f"{path}: {options[part + '_key']} has {arr.shape[0]} rows, expected {n} "
                f"(the rows of the other two arrays)"
                + (transposed_hint(**declared_layout(options, f"{part}_layout")) if flipped else "")
            )
    names = list(options.get("label_names") or [f"label{j}" for j in range(labels.shape[1])])
    if len(names) != labels.shape[1]:
        raise DatasetError(
            f"config.yaml: label_names has {len(names)} names, {lpath} has "
            f"{labels.shape[1]} label columns"
        )
    official = _official_split(options, n, lpath)
    write_features(
        out,
        Features(
            ids=np.array([f"{i:06d}" for i in range(n)]),
            labels=labels,
            label_names=names,
            image=image.astype(np.float32),
            text=text.astype(np.float32),
            official_split=official,
            attrs={
                "dataset": options.get("name", ""),
                "encoder": ENCODER,
                "encoder_id": f"{ipath.name}:{options['image_key']} + "
                f"{tpath.name}:{options['text_key']}",
                "encoder_revision": "",
                "preprocessing": {"source": "dcmh_mat"},
                "source": "dcmh_mat",
            },
        ),
    )
    return {
        "items": n,
        "image_dim": image.shape[1],
        "text_dim": text.shape[1],
        "labels": labels.shape[1],
    }


def _indices(options: dict[str, Any], key_option: str, n: int) -> np.ndarray:
    """The rows named by the index vector at ``options[key_option]`` (1-based indices or a
    0/1 mask of ``n`` entries) as 0-based row numbers."""
    path = Path(options.get("index_mat") or options.get("label_mat") or "").expanduser()
    key = options[key_option]
    arr = take(load_mat(path), path, key, ndim=1)
    if arr.size == n and np.isin(arr, (0, 1)).all() and (arr == 0).any():  # a 0/1 mask
        return np.flatnonzero(arr)
    if arr.size == 0 or (arr != np.round(arr)).any() or arr.min() < 1 or arr.max() > n:
        raise DatasetError(
            f"{path}: {key} ({setting(options, key_option)}) must hold MATLAB's 1-based row "
            f"indices between 1 and {n} (or a 0/1 mask of {n} entries); it has values "
            f"{arr.min() if arr.size else '-'}..{arr.max() if arr.size else '-'}"
        )
    return arr.astype(np.int64) - 1


def _official_split(options: dict[str, Any], n: int, where: Path) -> np.ndarray | None:
    """``query`` for the last ``official_query`` rows, ``train`` for the others; or the
    rows of the index vectors ``query_index_key``/``train_index_key`` (others
    ``database``)."""
    q = options.get("official_query")
    if options.get("query_index_key"):
        if q is not None:
            raise DatasetError(
                f"config.yaml: {setting(options, 'official_query')} and "
                f"{setting(options, 'query_index_key')} both set the queries; keep one"
            )
        split = np.full(n, "database", dtype=object)
        if options.get("train_index_key"):
            split[_indices(options, "train_index_key", n)] = "train"
        query = _indices(options, "query_index_key", n)
        if (split[query] == "train").any():
            raise DatasetError(
                f"config.yaml: {setting(options, 'query_index_key')} and "
                f"{setting(options, 'train_index_key')} share rows; the queries must be "
                "held out of training"
            )
        split[query] = "query"
        return split.astype(str)
    if options.get("train_index_key"):
        raise DatasetError(
            f"config.yaml: {setting(options, 'train_index_key')} needs "
            f"{setting(options, 'query_index_key')} (the official queries)"
        )
    if q is None:
        return None
    if not 0 < int(q) < n:
        raise DatasetError(
            f"config.yaml: datasets.<name>.official_query={q} must be between 1 and the "
            f"number of rows - 1 ({n - 1} in {where})"
        )
    return np.where(np.arange(n) >= n - int(q), "query", "train")


def _pixels(path: Path, key: str, n: int) -> Iterator[np.ndarray]:
    """The images of a raw-pixel array, one (H, W, 3) uint8 array at a time."""
    import h5py

    require(path, "the raw-pixel .mat file")
    if h5py.is_hdf5(path):  # v7.3: h5py sees (N, 3, W, H)
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DatasetError(f"{path}: key {key!r} missing (keys: {sorted(f.keys())})")
            ds = f[key]
            if ds.ndim != 4 or ds.shape[0] != n or ds.shape[1] != 3:
                raise DatasetError(
                    f"{path}: {key} has shape {ds.shape}, expected "
                    f"({n}, 3, W, H) (one image per label row)"
                )
            for i in range(n):
                yield np.ascontiguousarray(ds[i].transpose(2, 1, 0))
        return
    arr = take(load_mat(path), path, key, ndim=4)  # v5: MATLAB order (H, W, 3, N)
    if arr.shape[2] != 3 or arr.shape[3] != n:
        raise DatasetError(f"{path}: {key} has shape {arr.shape}, expected (H, W, 3, {n})")
    for i in range(n):
        yield np.ascontiguousarray(arr[..., i])


def _vocabulary(options: dict[str, Any], n_cols: int, where: str) -> list[str]:
    from xmhash.data.datasets import mirflickr25k

    value = options.get("vocabulary")
    if not value:
        raise DatasetError(
            f"config.yaml: datasets.<name>.vocabulary must name the tag list "
            f"whose line j is column j of {where} (or 'mirflickr25k')"
        )
    if value == "mirflickr25k":
        words = mirflickr25k.vocabulary()
    else:
        path = require(Path(value).expanduser(), "the vocabulary file")
        words = [w.strip() for w in path.read_text().splitlines() if w.strip()]
    if len(words) != n_cols:
        raise DatasetError(f"{value}: {len(words)} words, but {where} has {n_cols} columns")
    return words


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from PIL import Image

    from xmhash.log import progress

    bow, tpath = _array(options, "text")
    raw_labels, lpath = _array(options, "label")
    labels = class_ids_to_multihot(raw_labels, lpath, options["label_key"])
    n = labels.shape[0]
    if bow.shape[0] != n:
        raise DatasetError(
            f"{tpath}: {options['text_key']} has {bow.shape[0]} rows, expected "
            f"{n} (the rows of {lpath.name}:{options['label_key']})"
        )
    vocab = _vocabulary(options, bow.shape[1], f"{tpath.name}:{options['text_key']}")
    names = list(options.get("label_names") or [f"label{j}" for j in range(labels.shape[1])])
    ipath = Path(options.get("image_mat") or "").expanduser()
    items = []
    with workdir(out) as work:
        images = work / "images"
        images.mkdir()
        pixels = _pixels(ipath, str(options.get("image_key")), n)
        for i, img in enumerate(progress(pixels, desc="write images", total=n, unit="img")):
            Image.fromarray(img).save(images / f"{i:06d}.png")
            words = [vocab[j] for j in np.flatnonzero(bow[i])]
            items.append(
                Item(
                    id=f"{i:06d}",
                    image=f"{i:06d}.png",
                    text=" ".join(words),
                    labels=np.flatnonzero(labels[i]).tolist(),
                    tags=words,
                )
            )
        counts = {"items": n, "empty_texts": sum(not it.text for it in items)}
        write_prepared(
            out,
            items,
            {
                "dataset": options.get("name", "dcmh_mat"),
                "label_names": names,
                "image_root": "images",
                "text_kind": "tags",
                "vocabulary": vocab,
                "source": "dcmh_mat",
                "counts": counts,
            },
            files={"images": images},
        )
    return counts


SOURCE = Source(
    name="dcmh_mat",
    title="DCMH-lineage .mat files",
    files=(),
    prepare=prepare,
    import_features=import_features,
    encoder=ENCODER,
    size="as the files (e.g. MIRFlickr 20,015 x 4096 / 1386 / 24)",
    licence="as the original dataset",
    user_supplies="the .mat files (cloud-drive links in the DCMH/DJSRH/UCCH READMEs)",
)
