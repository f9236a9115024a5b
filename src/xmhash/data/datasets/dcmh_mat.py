"""Precomputed DCMH-lineage ``.mat`` files (jiangqy/DCMH-CVPR2017; DJSRH, JDSH, UCCH, ...).

One array per file, e.g. ``mirflickr25k-iall-vgg.mat`` (``XAll``, (N, 4096)),
``mirflickr25k-yall.mat`` (``YAll``, (N, 1386) tag bag of words) and
``mirflickr25k-lall.mat`` (``LAll``, (N, 24)); v5 or v7.3 (HDF5) files. They are shared
through cloud drives, not a fetchable URL, so the user sets their paths
(``image_mat``/``image_key``, ``text_mat``/``text_key``, ``label_mat``/``label_key``).

The arrays are imported as the feature file of encoder key ``mat``: image features,
text features (bag of words as float32), multi-hot labels. Rows are items, in file
order. Raw-pixel arrays (``IAll``, (N, 3, 224, 224)) are not features and are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import DatasetError, Source
from xmhash.data.datasets.matfile import class_ids_to_multihot, load_mat, take

ENCODER = "mat"


def _array(options: dict[str, Any], part: str) -> tuple[np.ndarray, Path]:
    path, key = options.get(f"{part}_mat"), options.get(f"{part}_key")
    if not path or not key:
        raise DatasetError(
            f"config.yaml: datasets.<name>.{part}_mat and {part}_key must name "
            f"the .mat file and its array (e.g. {_EXAMPLE[part]})"
        )
    path = Path(path).expanduser()
    mat = load_mat(path)
    arr = np.asarray(mat[key]) if key in mat else take(mat, path, key)
    if part != "label" and arr.ndim != 2:
        raise DatasetError(
            f"{path}: {key} has shape {arr.shape}, expected (N, D) features"
            + (
                "; raw-pixel arrays are not features: export the images and use "
                "a prepared dataset instead"
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
    n = image.shape[0]
    for arr, path, part in ((text, tpath, "text"), (labels, lpath, "label")):
        if arr.shape[0] != n:
            raise DatasetError(
                f"{path}: {options[part + '_key']} has {arr.shape[0]} rows, "
                f"expected {n} (the rows of {ipath.name}:{options['image_key']})"
            )
    names = list(options.get("label_names") or [f"label{j}" for j in range(labels.shape[1])])
    if len(names) != labels.shape[1]:
        raise DatasetError(
            f"config.yaml: label_names has {len(names)} names, {lpath} has "
            f"{labels.shape[1]} label columns"
        )
    write_features(
        out,
        Features(
            ids=np.array([f"{i:06d}" for i in range(n)]),
            labels=labels,
            label_names=names,
            image=image.astype(np.float32),
            text=text.astype(np.float32),
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


SOURCE = Source(
    name="dcmh_mat",
    title="DCMH-lineage .mat files",
    files=(),
    import_features=import_features,
    encoder=ENCODER,
    size="as the files (e.g. MIRFlickr 20,015 x 4096 / 1386 / 24)",
    licence="as the original dataset",
    user_supplies="the .mat files (cloud-drive links in the DCMH/DJSRH/UCCH READMEs)",
)
