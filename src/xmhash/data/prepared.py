"""The prepared dataset: the only module that knows its layout.

The dataset stage turns each official distribution into this layout; the feature stage
reads it. One directory per dataset, ``resources/{dataset}/prepared/``::

    items.jsonl   one JSON object per item, in dataset order:
                  {"id": str, "image": str, "text": str, "labels": [int, ...],
                   "split": "query" | "database" | "train" | "val" | "" (optional),
                   "tags": [str, ...] (optional), "captions": [str, ...] (optional)}
                  ``image`` is relative to ``image_root``; ``text`` is what the text
                  encoder embeds (tags joined, or one caption); ``labels`` are indices
                  into ``label_names``; ``split`` is the dataset's official split, if any.
    meta.json     {"dataset": str, "label_names": [str], "n_items": int,
                   "image_root": str (absolute, or relative to this directory),
                   "text_kind": "tags" | "caption" | "document",
                   "vocabulary": [str] (optional, e.g. MIRFlickr's 1,386 tags),
                   "source": str, "counts": {...} (what was dropped and why), ...}

The directory is written atomically (:func:`write_prepared`), so a crash never leaves a
half-prepared dataset behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmhash import __version__
from xmhash.io import atomic_path

ITEMS, META = "items.jsonl", "meta.json"
SPLITS = ("query", "database", "train", "val", "")


class PreparedError(ValueError):
    pass


@dataclass
class Item:
    id: str
    image: str
    text: str
    labels: list[int]
    split: str = ""
    tags: list[str] | None = None
    captions: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "image": self.image,
            "text": self.text,
            "labels": [int(x) for x in self.labels],
        }
        if self.split:
            d["split"] = self.split
        if self.tags is not None:
            d["tags"] = list(self.tags)
        if self.captions is not None:
            d["captions"] = list(self.captions)
        return d


@dataclass
class Prepared:
    root: Path
    items: list[Item]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    @property
    def image_root(self) -> Path:
        root = Path(self.meta.get("image_root", "images"))
        return root if root.is_absolute() else self.root / root

    def image_path(self, item: Item) -> Path:
        return self.image_root / item.image

    def label_matrix(self) -> np.ndarray:
        y = np.zeros((len(self.items), len(self.label_names)), np.uint8)
        for i, it in enumerate(self.items):
            y[i, it.labels] = 1
        return y

    def official_split(self) -> np.ndarray:
        return np.array([it.split for it in self.items], dtype=str)


def write_prepared(
    directory: str | os.PathLike,
    items: Iterable[Item],
    meta: dict[str, Any],
    files: dict[str, str | os.PathLike] | None = None,
) -> None:
    """Write the layout atomically. ``files`` maps names inside the directory to existing
    files or directories that are moved in (e.g. ``{"images": extracted_dir}``)."""
    items = list(items)
    names = meta.get("label_names")
    if not names:
        raise PreparedError(f"{directory}: meta needs a non-empty label_names list")
    _check(items, len(names), str(directory))
    meta = {**meta, "n_items": len(items), "xmhash_version": __version__}
    with atomic_path(directory, directory=True) as tmp:
        with open(tmp / ITEMS, "w") as fh:
            for it in items:
                fh.write(json.dumps(it.to_json(), ensure_ascii=False) + "\n")
        (tmp / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        for name, src in (files or {}).items():
            os.replace(src, tmp / name)


def _check(items: Sequence[Item], n_labels: int, where: str) -> None:
    if items and not any(it.text.strip() for it in items):
        raise PreparedError(
            f"{where}: the text of every item is empty; cross-modal hashing needs a text "
            f"per image (check the dataset's text files or captions)"
        )
    seen: set[str] = set()
    for line, it in enumerate(items, 1):
        if it.id in seen:
            raise PreparedError(f"{where}: duplicate item id {it.id!r} (item {line})")
        seen.add(it.id)
        bad = [x for x in it.labels if not 0 <= x < n_labels]
        if bad:
            raise PreparedError(
                f"{where}: item {it.id!r} has label indices {bad} outside 0..{n_labels - 1}"
            )
        if it.split not in SPLITS:
            raise PreparedError(
                f"{where}: item {it.id!r} has split {it.split!r}, expected one of {SPLITS}"
            )


def read_prepared(directory: str | os.PathLike) -> Prepared:
    directory = Path(directory)
    for name in (ITEMS, META):
        if not (directory / name).exists():
            raise PreparedError(f"{directory}: missing {name}; run the dataset stage first")
    meta = json.loads((directory / META).read_text())
    items = []
    with open(directory / ITEMS) as fh:
        for line_no, line in enumerate(fh, 1):
            try:
                d = json.loads(line)
                items.append(
                    Item(
                        id=d["id"],
                        image=d["image"],
                        text=d["text"],
                        labels=list(d["labels"]),
                        split=d.get("split", ""),
                        tags=d.get("tags"),
                        captions=d.get("captions"),
                    )
                )
            except (json.JSONDecodeError, KeyError) as e:
                raise PreparedError(f"{directory / ITEMS}, line {line_no}: {e!r}") from None
    if len(items) != meta.get("n_items", len(items)):
        raise PreparedError(
            f"{directory}: meta.json says {meta['n_items']} items, {ITEMS} has {len(items)}"
        )
    _check(items, len(meta["label_names"]), str(directory))
    return Prepared(root=directory, items=items, meta=meta)
