"""NUS-WIDE (Chua et al., CIVR 2009): official tags and concepts, images from a folder.

Official files (https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/
NUS-WIDE.html): ``NUS_WID_Tags.zip`` (``AllTags1k.txt``: 269,648 rows of 1,000 0/1 tag
flags; ``TagList1k.txt``), ``Groundtruth.zip`` (``AllLabels/Labels_<concept>.txt``: one
0/1 per image), ``ImageList.zip`` (``Imagelist.txt``: one ``<concept>\\<file>.jpg`` path
per image, Windows separators) and ``Concepts81.txt``. The images themselves are Flickr
URLs; the user supplies the downloaded image folder (``image_dir``, holding
``<concept>/<file>.jpg`` as in the official image release).

Variants (``variant``): ``tc10`` keeps the images with at least one of the 10 most
frequent concepts (186,577 pairs in DCMH/DJSRH), ``tc21`` the 21 most frequent
(190,421 in DCHMT/MITH, 195,834 in DCMH). Items also need at least one of the 1,000 tags
(``require_tags``, the text must not be empty). Label columns follow frequency order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from xmhash.data.datasets.base import (
    DatasetError,
    Source,
    check_images,
    find_dir,
    option,
    read_lines,
    setting,
    unpack,
    user_dir,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)

_BASE = "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide"
TAGS, TRUTH, LIST, CONCEPTS = (
    "NUS_WID_Tags.zip",
    "Groundtruth.zip",
    "ImageList.zip",
    "Concepts81.txt",
)
VARIANTS = {"tc10": 10, "tc21": 21}


def _matrix(path: Path, n_rows: int, n_cols: int) -> np.ndarray:
    """A whitespace-separated 0/1 text matrix (fast: every value is one character)."""
    data = np.frombuffer(path.read_bytes(), np.uint8)
    digits = (data >= ord("0")) & (data <= ord("9"))
    if (digits & (data > ord("1"))).any() or ((data >= ord("A")) & (data != 127)).any():
        raise DatasetError(f"{path}: not a 0/1 matrix")
    content = data[(data != ord("\r")) & (data != ord(" ")) & (data != ord("\t"))]
    rows = int(np.count_nonzero(content == ord("\n")))
    rows += int(content.size > 0 and content[-1] != ord("\n"))
    values = data[digits] - ord("0")
    cols = values.size // rows if rows else 0
    if rows != n_rows or values.size != n_rows * n_cols:
        raise DatasetError(
            f"{path}: {rows} rows x {cols} columns, expected ({n_rows}, "
            f"{n_cols}) (one row per image of Imagelist.txt)"
        )
    return values.reshape(n_rows, n_cols)


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    variant = option(options, "variant", "tc10")
    if variant not in VARIANTS:
        raise DatasetError(
            f"config.yaml: {setting(options, 'variant')} {variant!r}, expected one of "
            f"{sorted(VARIANTS)}"
        )
    image_dir = user_dir(options, "image_dir", "nuswide")
    with workdir(out) as work:
        lists = find_dir(unpack(files[LIST], work), "Imagelist.txt", "image list", files[LIST])
        paths = [p.strip().replace("\\", "/") for p in read_lines(lists / "Imagelist.txt")]
        paths = ["/".join(p.split("/")[-2:]) for p in paths if p]
        n = len(paths)
        tags_root = find_dir(unpack(files[TAGS], work), "AllTags1k.txt", "tags", files[TAGS])
        vocab = [t.strip() for t in read_lines(tags_root / "TagList1k.txt") if t.strip()]
        tags = _matrix(tags_root / "AllTags1k.txt", n, len(vocab))
        concepts = [c.strip() for c in read_lines(files[CONCEPTS]) if c.strip()]
        truth = find_dir(
            unpack(files[TRUTH], work), f"Labels_{concepts[0]}.txt", "AllLabels", files[TRUTH]
        )
        labels = np.concatenate(
            [_matrix(truth / f"Labels_{c}.txt", n, 1) for c in concepts], axis=1
        )
    freq = labels.sum(axis=0, dtype=np.int64)
    top = sorted(range(len(concepts)), key=lambda j: (-int(freq[j]), j))[: VARIANTS[variant]]
    y = labels[:, top]
    has_label = y.any(axis=1)
    has_tag = tags.any(axis=1) if option(options, "require_tags", True) else np.ones(n, bool)
    keep = np.flatnonzero(has_label & has_tag)
    items = []
    for i in keep:
        words = [vocab[j] for j in np.flatnonzero(tags[i])]
        items.append(
            Item(
                id=Path(paths[i]).stem,
                image=paths[i],
                text=" ".join(words),
                labels=np.flatnonzero(y[i]).tolist(),
                tags=words,
            )
        )
    check_images(image_dir, [it.image for it in items], option(options, "check_images", True))
    counts = {
        "images": n,
        "variant": variant,
        "dropped_no_label": int((~has_label).sum()),
        "dropped_no_tag": int((has_label & ~has_tag).sum()),
        "kept": len(items),
    }
    log.info("NUS-WIDE %s: %s", variant, counts)
    write_prepared(
        out,
        items,
        {
            "dataset": f"nuswide_{variant}",
            "label_names": [concepts[j] for j in top],
            "image_root": str(image_dir),
            "text_kind": "tags",
            "vocabulary": vocab,
            "source": "nuswide",
            "counts": counts,
        },
    )
    return counts


SOURCE = Source(
    name="nuswide",
    title="NUS-WIDE",
    files=(
        Remote(TAGS, (f"{_BASE}/{TAGS}",)),
        Remote(TRUTH, (f"{_BASE}/{TRUTH}",)),
        Remote(LIST, (f"{_BASE}/{LIST}",)),
        Remote(CONCEPTS, (f"{_BASE}/{CONCEPTS}",)),
    ),
    prepare=prepare,
    size="269,648 images; TC-10 186,577 pairs; TC-21 190,421-195,834 pairs",
    licence="research use; images under their Flickr licences",
    user_supplies="the images (image_dir: <concept>/<file>.jpg), downloaded from the "
    "official Flickr URL list",
    options={"variant": "tc10", "require_tags": True, "check_images": True},
)
