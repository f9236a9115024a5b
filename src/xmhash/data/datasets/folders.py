"""Registration-only image-text sets, read from class folders the user downloaded.

Layout (``root``, set in the config)::

    root/images/<class>/<name>.<jpg|png|...>
    root/texts/<class>/<name>.txt

``pairing: instance`` pairs an image and a text with the same ``<class>/<name>`` (XMedia,
XMediaNet, INRIA-Websearch: pairs are instances; unpaired files are counted and left
out). ``pairing: class`` is for FG-XMedia, whose images and texts are not paired: within
each class, images and texts are sorted by name and image i gets text ``i mod n_texts``,
so every image appears once and texts are reused in turn (a class-level pairing: the
pair shares a label, not content). The label is the class folder (single-label).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import DatasetError, check_images, option, setting
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}


def _by_class(folder: Path, suffixes: set[str] | None) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: missing (expected <root>/{folder.name}/<class>/...)")
    out = {}
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(
            p
            for p in cls.iterdir()
            if p.is_file() and (suffixes is None or p.suffix.lower() in suffixes)
        )
        if files:
            out[cls.name] = files
    if not out:
        raise DatasetError(f"{folder}: no class folders with files")
    return out


def prepare_folders(dataset: str, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    if not options.get("root"):
        raise DatasetError(
            f"config.yaml: {setting(options, 'root')} must name the {dataset} folder with "
            f"images/ and texts/"
        )
    root = Path(options["root"]).expanduser().resolve()
    pairing = option(options, "pairing", "instance")
    images = _by_class(root / "images", IMAGE_SUFFIXES)
    texts = _by_class(root / "texts", {".txt"})
    names = sorted(set(images) | set(texts))
    items, unpaired = [], 0
    texts_used: dict[Path, str] = {}  # each text file read once (class pairing reuses them)
    for c, cls in enumerate(names):
        imgs, txts = images.get(cls, []), texts.get(cls, [])
        if pairing == "class":
            if not txts:
                unpaired += len(imgs)
                continue
            pairs = [(im, txts[i % len(txts)]) for i, im in enumerate(imgs)]
        else:
            by_stem = {t.stem: t for t in txts}
            pairs = [(im, by_stem[im.stem]) for im in imgs if im.stem in by_stem]
            unpaired += len(imgs) + len(txts) - 2 * len(pairs)
        for im, tx in pairs:
            if tx not in texts_used:
                texts_used[tx] = " ".join(tx.read_text(errors="replace").split())
            items.append(
                Item(
                    id=f"{cls}/{im.stem}", image=f"{cls}/{im.name}", text=texts_used[tx], labels=[c]
                )
            )
    if not items:
        raise DatasetError(f"{root}: no image-text pairs found (pairing: {pairing})")
    empty = sorted({str(tx.relative_to(root)) for tx in texts_used if not texts_used[tx]})
    if empty:
        log.warning(
            "%s: %d of %d text files are empty (%s); their items are kept, and their "
            "text embedding is that of the empty string",
            root,
            len(empty),
            len(texts_used),
            ", ".join(empty[:10]) + (", ..." if len(empty) > 10 else ""),
        )
    check_images(root / "images", [it.image for it in items], option(options, "check_images", True))
    counts = {
        "kept": len(items),
        "unpaired_files": unpaired,
        "classes": len(names),
        "pairing": pairing,
    }
    write_prepared(
        out,
        items,
        {
            "dataset": dataset,
            "label_names": names,
            "image_root": str(root / "images"),
            "text_kind": "document",
            "source": dataset,
            "counts": counts,
        },
    )
    return counts
