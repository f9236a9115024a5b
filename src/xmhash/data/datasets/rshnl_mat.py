"""RSHNL-style feature ``.mat`` files (RSHNL, AAAI; and the MRL/SDML lineage).

Four layouts, by ``format`` (keys as the RSHNL loaders read them):

* ``xmedia``: ``I_tr_CNN``/``I_te_CNN`` (image), ``T_tr_BOW``/``T_te_BOW`` (text),
  ``trImgCat``/``teImgCat`` (1-based class ids); the first ``val_rows`` (500) test rows
  are the validation part, the rest the test part.
* ``wiki``: ``train_imgs_deep``, ``train_texts_doc``, ``train_imgs_labels``, and
  ``test_*`` likewise; the first ``val_rows`` (231) test rows are validation.
* ``inria``: ``tr_img``, ``tr_txt``, ``tr_img_lab``, ``val_*``, ``te_*``.
* ``xmedianet``: ``train``/``valid``/``test`` cell arrays of 5 views (0 image, 1 text)
  and ``train_labels``/``valid_labels``/``test_labels`` (view-0 labels used).

A file that stores the same arrays under other names, or inside a MATLAB struct, declares
where each one is: ``keys`` maps a key of the format to a field path of the file (e.g.
``{train_imgs_deep: data.img_tr}``); ``layout: columns`` reads arrays stored one item per
column (D x N).

Imported as the feature file of encoder key ``mat`` with the official split recorded:
train -> ``train``, validation -> ``val``, test -> ``query``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import DatasetError, Source, option, setting
from xmhash.data.datasets.matfile import (
    class_ids_to_multihot,
    declared_layout,
    field,
    load_mat,
    take,
)

ENCODER = "mat"
_KEYS = {  # format -> part -> (image key, text key, label key)
    "xmedia": {
        "tr": ("I_tr_CNN", "T_tr_BOW", "trImgCat"),
        "te": ("I_te_CNN", "T_te_BOW", "teImgCat"),
    },
    "wiki": {
        "tr": ("train_imgs_deep", "train_texts_doc", "train_imgs_labels"),
        "te": ("test_imgs_deep", "test_texts_doc", "test_imgs_labels"),
    },
    "inria": {
        "tr": ("tr_img", "tr_txt", "tr_img_lab"),
        "val": ("val_img", "val_txt", "val_img_lab"),
        "te": ("te_img", "te_txt", "te_img_lab"),
    },
}
_VAL_ROWS = {"xmedia": 500, "wiki": 231}
_SPLIT = {"tr": "train", "val": "val", "te": "query"}


def _cell(mat: dict[str, Any], path: Path, key: str, view: int) -> np.ndarray:
    cells = np.asarray(field(mat, path, key)).reshape(-1)
    if view >= len(cells):
        raise DatasetError(f"{path}: {key} has {len(cells)} views, expected 5")
    return np.asarray(cells[view])


def _key_names(options: dict[str, Any], fmt: str):
    """The field path of each key of the format: the key itself, or its ``keys`` entry."""
    known = (
        {k for keys in _KEYS[fmt].values() for k in keys}
        if fmt in _KEYS
        else {"train", "valid", "test", "train_labels", "valid_labels", "test_labels"}
    )
    renamed = dict(options.get("keys") or {})
    for key in renamed:
        if key not in known:
            raise DatasetError(
                f"config.yaml: {setting(options, 'keys')}: {key!r} is not a key of the "
                f"{fmt} format (its keys: {', '.join(sorted(known))})"
            )
    return lambda key: renamed.get(key, key)


def import_features(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from xmhash.features.store import Features, write_features

    fmt = option(options, "format", "xmedia")
    if not options.get("mat"):
        raise DatasetError("config.yaml: datasets.<name>.mat must name the feature .mat file")
    path = Path(options["mat"]).expanduser()
    mat = load_mat(path)
    name = _key_names(options, fmt)
    parts = []  # (split name, image, text, label ids)
    if fmt == "xmedianet":
        for key, split in (("train", "train"), ("valid", "val"), ("test", "query")):
            img, txt = _cell(mat, path, name(key), 0), _cell(mat, path, name(key), 1)
            lab = _cell(mat, path, name(f"{key}_labels"), 0)
            parts.append((split, img, txt, lab))
    elif fmt in _KEYS:
        layout = declared_layout(options, "layout")
        for part, keys in _KEYS[fmt].items():
            ik, tk, lk = (name(k) for k in keys)
            img = take(mat, path, ik, **layout)
            txt = take(mat, path, tk, rows=img.shape[0], **layout)
            lab = take(mat, path, lk, ndim=None, **layout)
            if lab.shape[0] != img.shape[0] and lab.size != img.shape[0]:
                raise DatasetError(
                    f"{path}: {lk} has {lab.shape[0]} rows, expected "
                    f"{img.shape[0]} (the rows of {ik})"
                )
            if part == "te" and fmt in _VAL_ROWS:
                v = int(option(options, "val_rows", _VAL_ROWS[fmt]))
                parts.append(("val", img[:v], txt[:v], lab.reshape(len(img), -1)[:v]))
                parts.append(("query", img[v:], txt[v:], lab.reshape(len(img), -1)[v:]))
            else:
                parts.append((_SPLIT[part], img, txt, lab.reshape(len(img), -1)))
    else:
        raise DatasetError(
            f"config.yaml: datasets.<name>.format {fmt!r}, expected one of "
            f"{sorted([*_KEYS, 'xmedianet'])}"
        )
    image = np.concatenate([p[1] for p in parts]).astype(np.float32)
    text = np.concatenate([p[2] for p in parts]).astype(np.float32)
    raw = np.concatenate([np.asarray(p[3]).reshape(len(p[1]), -1) for p in parts])
    labels = class_ids_to_multihot(raw if raw.shape[1] > 1 else raw[:, 0], path, "labels")
    split = np.concatenate([[p[0]] * len(p[1]) for p in parts])
    n = len(image)
    write_features(
        out,
        Features(
            ids=np.array([f"{s}{i:06d}" for i, s in enumerate(split)]),
            labels=labels,
            label_names=[f"class{j}" for j in range(labels.shape[1])],
            image=image,
            text=text,
            official_split=split,
            attrs={
                "dataset": fmt,
                "encoder": ENCODER,
                "encoder_id": f"{path.name} ({fmt})",
                "encoder_revision": "",
                "preprocessing": {"source": "rshnl_mat", "format": fmt},
                "source": "rshnl_mat",
            },
        ),
    )
    return {"items": n, **{s: int((split == s).sum()) for s in ("train", "val", "query")}}


SOURCE = Source(
    name="rshnl_mat",
    title="RSHNL-style feature .mat (XMedia, Wikipedia, INRIA-Websearch, XMediaNet)",
    files=(),
    import_features=import_features,
    encoder=ENCODER,
    size="XMedia 20 classes; Wikipedia 2,173/231/462; XMediaNet 32,000/4,000/4,000",
    licence="as the original dataset (registration-only for the PKU sets)",
    user_supplies="the .mat feature file",
    options={"format": "xmedia", "layout": "rows"},
)
