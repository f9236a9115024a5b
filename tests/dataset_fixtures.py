"""Miniature official archives for the dataset tests, built in the official layouts.

Images are tiny generated JPEGs; tag and label rows come from the real shared MIRFlickr
metadata when a builder takes ``meta`` (``shared_dir / "data/mirflickr25k-meta"``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

MIRFLICKR_LABELS = [
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor",
    "lake", "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky",
    "structures", "sunset", "transport", "tree", "water",
]  # fmt: skip


def jpeg(seed: int, size: int = 8) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class MirflickrMeta:
    """The shared metadata's rows for images im1..im{n_images}."""

    def __init__(self, meta_dir: Path, n_images: int):
        imgs = (meta_dir / "all_imgs.txt").read_text().split("\n")[:-1]
        tags = (meta_dir / "all_tags.txt").read_text().split("\n")[:-1]
        labels = np.loadtxt(meta_dir / "all_labels.txt", dtype=np.uint8)
        self.vocabulary = (meta_dir / "TagList.txt").read_text().split("\n")[:-1]
        number = [int(p.rsplit("im", 1)[1].removesuffix(".jpg")) for p in imgs]
        keep = [i for i, k in enumerate(number) if k <= n_images]
        self.n_images = n_images
        self.numbers = [number[i] for i in keep]
        self.paths = [imgs[i] for i in keep]
        self.tags = [tags[i].split(",") for i in keep]
        self.labels = labels[keep]


def mirflickr_archives(meta: MirflickrMeta) -> dict[str, bytes]:
    """``mirflickr25k.zip`` and ``mirflickr25k_annotations_v080.zip`` for im1..im{n}.

    Kept images get their real tags (with out-of-vocabulary tags mixed in, which the
    preparation must drop) and labels; the other images get either no label or only
    out-of-vocabulary tags, the two reasons the standard subset drops an image.
    """
    row = {k: i for i, k in enumerate(meta.numbers)}
    members: dict[str, bytes | str] = {}
    concept_rows: dict[str, list[int]] = {c: [] for c in MIRFLICKR_LABELS}
    for k in range(1, meta.n_images + 1):
        members[f"mirflickr/im{k}.jpg"] = jpeg(k)
        if k in row:
            tags = meta.tags[row[k]]
            tags = [tags[0], "zzz_not_a_vocabulary_tag", *tags[1:]]
            labels = np.flatnonzero(meta.labels[row[k]]).tolist()
        elif k % 2:
            tags, labels = ["zzz_only_rare_tags"], [k % 24]
        else:
            tags, labels = [meta.vocabulary[0]], []
        members[f"mirflickr/meta/tags/tags{k}.txt"] = "".join(f"{t}\r\n" for t in tags)
        for c in labels:
            concept_rows[MIRFLICKR_LABELS[c]].append(k)
    members["mirflickr/doc/readme.txt"] = "MIRFLICKR-25000 (fixture)\n"
    notes: dict[str, bytes | str] = {"README.txt": "potential labels (fixture)\n"}
    for c, rows in concept_rows.items():
        notes[f"{c}.txt"] = "".join(f"{k}\n" for k in rows)
        notes[f"{c}_r1.txt"] = "".join(f"{k}\n" for k in rows[::2])
    return {
        "mirflickr25k.zip": zip_bytes(members),
        "mirflickr25k_annotations_v080.zip": zip_bytes(notes),
    }
