"""MIRFlickr-25K (Huiskes & Lew, MIR 2008), the standard cross-modal hashing subset.

Official files (https://press.liacs.nl/mirflickr/): ``mirflickr25k.zip`` (``mirflickr/
im1.jpg`` .. ``im25000.jpg``, ``mirflickr/meta/tags/tags{N}.txt``: one processed tag per
line) and ``mirflickr25k_annotations_v080.zip`` (``{concept}.txt``: 1-based image numbers,
one per line; ``{concept}_r1.txt`` are the stricter "relevant" annotations, not used).

The standard subset (DCMH, DJSRH, ..., DCHMT/MITH/VTM-UCH): the 24 "potential labels"
concepts in alphabetical order as the label columns; the 1,386-tag vocabulary
(``mirflickr25k_taglist.txt``, the list the CLIP-era papers ship, whose order defines the
bag-of-words columns); an image is kept when it has at least one label and at least one
vocabulary tag: 20,015 pairs. The text is the item's vocabulary tags in file order,
joined by spaces (as in DCHMT/MITH).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import (
    DatasetError,
    Source,
    check_images,
    find_dir,
    option,
    read_lines,
    unpack,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)

_BASE = "http://press.liacs.nl/mirflickr/mirflickr25k.v3b"
IMAGES = "mirflickr25k.zip"
ANNOTATIONS = "mirflickr25k_annotations_v080.zip"
LABELS = [
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor",
    "lake", "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky",
    "structures", "sunset", "transport", "tree", "water",
]  # fmt: skip
VOCABULARY_FILE = Path(__file__).with_name("mirflickr25k_taglist.txt")


def vocabulary() -> list[str]:
    return VOCABULARY_FILE.read_text().split("\n")[:-1]


def read_concepts(root: Path, archive: Path, n_images: int) -> list[set[int]]:
    """Per label, the set of 1-based image numbers annotated with it."""
    found = {p.stem for p in root.glob("*.txt")}
    missing = [c for c in LABELS if c not in found]
    if missing:
        raise DatasetError(
            f"{archive}: annotation files {[c + '.txt' for c in missing]} "
            f"missing; expected the 24 potential-label files {LABELS}"
        )
    concepts = []
    for name in LABELS:
        path = root / f"{name}.txt"
        rows = set()
        for line_no, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            try:
                k = int(line)
            except ValueError:
                raise DatasetError(
                    f"{path}, line {line_no}: {line!r} is not an image number"
                ) from None
            if not 1 <= k <= n_images:
                raise DatasetError(
                    f"{path}, line {line_no}: image number {k} outside "
                    f"1..{n_images} (images in {IMAGES})"
                )
            rows.add(k)
        concepts.append(rows)
    return concepts


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    vocab = vocabulary()
    in_vocab = set(vocab)
    with workdir(out) as work:
        images = unpack(files[IMAGES], work)
        notes = unpack(files[ANNOTATIONS], work)
        root = find_dir(images, "im1.jpg", "the MIRFlickr images", files[IMAGES])
        tag_dir = root / "meta" / "tags"
        if not tag_dir.is_dir():
            raise DatasetError(f"{files[IMAGES]}: no mirflickr/meta/tags/ folder")
        n_images = sum(1 for _ in root.glob("im*.jpg"))
        concepts = read_concepts(
            find_dir(notes, "animals.txt", "the annotations", files[ANNOTATIONS]),
            files[ANNOTATIONS],
            n_images,
        )
        items, no_label, no_tag = [], 0, 0
        for k in range(1, n_images + 1):
            labels = [c for c, rows in enumerate(concepts) if k in rows]
            tags = [t.strip().lower() for t in read_lines(tag_dir / f"tags{k}.txt")]
            tags = [t for t in tags if t in in_vocab]
            if not labels:
                no_label += 1
                continue
            if not tags:
                no_tag += 1
                continue
            items.append(
                Item(
                    id=f"im{k}",
                    image=f"{root.name}/im{k}.jpg",
                    text=" ".join(tags),
                    labels=labels,
                    tags=tags,
                )
            )
        check_images(root.parent, [it.image for it in items], option(options, "check_images", True))
        counts = {
            "images": n_images,
            "dropped_no_label": no_label,
            "dropped_no_vocabulary_tag": no_tag,
            "kept": len(items),
        }
        log.info("MIRFlickr-25K: %s", counts)
        write_prepared(
            out,
            items,
            {
                "dataset": "mirflickr25k",
                "label_names": LABELS,
                "image_root": "images",
                "text_kind": "tags",
                "vocabulary": vocab,
                "source": "mirflickr25k",
                "counts": counts,
            },
            files={"images": root.parent},
        )
    return counts


SOURCE = Source(
    name="mirflickr25k",
    title="MIRFlickr-25K",
    files=(
        Remote(IMAGES, (f"{_BASE}/{IMAGES}",), note="about 2.9 GB"),
        Remote(ANNOTATIONS, (f"{_BASE}/{ANNOTATIONS}",)),
    ),
    prepare=prepare,
    size="20,015 pairs (of 25,000 images), 24 labels, 1,386 tags",
    licence="images under their Flickr Creative Commons licences (see mirflickr/meta/license)",
    user_supplies="nothing (downloaded)",
    options={"check_images": True},
)
