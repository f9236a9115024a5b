"""MS-COCO 2014 (Lin et al., ECCV 2014): images, captions, 80 instance categories.

Official files (https://cocodataset.org/#download): ``train2014.zip``, ``val2014.zip``
(``train2014/COCO_train2014_<id:012d>.jpg``, ...) and ``annotations_trainval2014.zip``
(``annotations/instances_{train,val}2014.json``, ``annotations/captions_{...}.json``).

Labels: the 80 categories (sorted by category id) of each image's instance annotations;
images without any (1,069 of 123,287) are dropped and counted, leaving 122,218. Text:
one of the image's 5 captions (``caption: first`` by annotation id, or ``random`` with
``caption_seed``, as DCHMT); all captions are kept in ``captions``.
"""

from __future__ import annotations

import json
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
    unpack,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)

TRAIN, VAL, NOTES = "train2014.zip", "val2014.zip", "annotations_trainval2014.zip"


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise DatasetError(f"{path}: missing (expected in {NOTES})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    how = option(options, "caption", "first")
    rng = np.random.default_rng(int(option(options, "caption_seed", 1)))
    with workdir(out) as work:
        notes = find_dir(
            unpack(files[NOTES], work), "instances_train2014.json", "annotations", files[NOTES]
        )
        images = work / "images"
        images.mkdir()
        for archive, part in ((files[TRAIN], "train2014"), (files[VAL], "val2014")):
            (find_dir(unpack(archive, work), part, "images", archive) / part).rename(images / part)
        records, categories = [], None
        for part in ("train2014", "val2014"):
            inst = _json(notes / f"instances_{part}.json")
            caps = _json(notes / f"captions_{part}.json")
            cats = sorted(inst["categories"], key=lambda c: c["id"])
            if categories is None:
                categories = cats
            col = {c["id"]: j for j, c in enumerate(categories)}
            labels: dict[int, set[int]] = {}
            for a in inst["annotations"]:
                labels.setdefault(a["image_id"], set()).add(col[a["category_id"]])
            captions: dict[int, list[tuple[int, str]]] = {}
            for a in caps["annotations"]:
                captions.setdefault(a["image_id"], []).append((a["id"], a["caption"].strip()))
            for im in sorted(inst["images"], key=lambda m: m["id"]):
                records.append(
                    (
                        part,
                        im,
                        sorted(labels.get(im["id"], ())),
                        [c for _, c in sorted(captions.get(im["id"], []))],
                    )
                )
        items, dropped = [], 0
        for part, im, labs, caps in records:
            if not labs or not caps:
                dropped += 1
                continue
            text = caps[0] if how == "first" else caps[int(rng.integers(len(caps)))]
            items.append(
                Item(
                    id=str(im["id"]),
                    image=f"{part}/{im['file_name']}",
                    text=text,
                    labels=labs,
                    captions=caps,
                )
            )
        check_images(images, [it.image for it in items], option(options, "check_images", True))
        counts = {"images": len(records), "dropped_no_label": dropped, "kept": len(items)}
        log.info("MS-COCO 2014: %s", counts)
        write_prepared(
            out,
            items,
            {
                "dataset": "coco2014",
                "label_names": [c["name"] for c in categories],
                "image_root": "images",
                "text_kind": "caption",
                "source": "coco2014",
                "counts": counts,
            },
            files={"images": images},
        )
    return counts


SOURCE = Source(
    name="coco2014",
    title="MS-COCO 2014",
    files=(
        Remote(TRAIN, ("http://images.cocodataset.org/zips/train2014.zip",), note="13 GB"),
        Remote(VAL, ("http://images.cocodataset.org/zips/val2014.zip",), note="6 GB"),
        Remote(NOTES, ("http://images.cocodataset.org/annotations/annotations_trainval2014.zip",)),
    ),
    prepare=prepare,
    size="123,287 images; 122,218 with labels; 80 labels; 5 captions each",
    licence="annotations CC BY 4.0; images under their Flickr licences",
    user_supplies="nothing (downloaded)",
    options={"caption": "first", "caption_seed": 1, "check_images": True},
)
