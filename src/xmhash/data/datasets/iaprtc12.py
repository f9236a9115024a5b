"""IAPR TC-12 (Grubinger et al., 2006): images and captions; labels from SAIAPR TC-12.

Official archive ``iaprtc12.tgz`` (https://www.imageclef.org/photodata):
``iaprtc12/images/<dir>/<id>.jpg`` and ``iaprtc12/annotations_complete_eng/<dir>/<id>.eng``
(SGML-like: ``<DOCNO>``, ``<TITLE>``, ``<DESCRIPTION>``, ...). Text: the description
(the title when it is empty).

The 255 labels of the hashing literature come from the segmented-and-annotated SAIAPR
TC-12 extension, distributed separately. The user exports them to ``labels_file``, a
text file with one line per image: ``<dir>/<id> <label> <label> ...`` (label names
without spaces; e.g. built from SAIAPR's per-region ``labels.txt``); images without a
line or without labels are dropped and counted. Label columns are the sorted names.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import (
    DatasetError,
    Source,
    check_images,
    find_dir,
    option,
    read_lines,
    setting,
    unpack,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

ARCHIVE = "iaprtc12.tgz"
_FIELD = {k: re.compile(rf"<{k}>(.*?)</{k}>", re.S | re.I) for k in ("DESCRIPTION", "TITLE")}


def _caption(path: Path) -> str:
    raw = path.read_text(encoding="latin-1")
    for key in ("DESCRIPTION", "TITLE"):
        m = _FIELD[key].search(raw)
        if m and m.group(1).strip():
            return " ".join(html.unescape(m.group(1)).split())
    return ""


def read_labels(path: Path) -> dict[str, list[str]]:
    out = {}
    for line_no, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] in out:
            raise DatasetError(f"{path}, line {line_no}: image {parts[0]!r} listed twice")
        out[parts[0]] = parts[1:]
    return out


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    if not options.get("labels_file"):
        raise DatasetError(
            f"config.yaml: {setting(options, 'labels_file')} must name the SAIAPR "
            f"TC-12 label export ('<dir>/<id> <label> ...' per line)"
        )
    labels_of = read_labels(Path(options["labels_file"]).expanduser())
    with workdir(out) as work:
        root = find_dir(
            unpack(files[ARCHIVE], work),
            "annotations_complete_eng",
            "the IAPR TC-12 layout",
            files[ARCHIVE],
        )
        notes = root / "annotations_complete_eng"
        records = []
        for eng in sorted(notes.glob("*/*.eng")):
            key = f"{eng.parent.name}/{eng.stem}"
            records.append((key, _caption(eng), labels_of.get(key, [])))
        if not records:
            raise DatasetError(f"{files[ARCHIVE]}: no annotations_complete_eng/<dir>/<id>.eng")
        unknown = sorted(set(labels_of) - {k for k, *_ in records})
        if unknown:
            raise DatasetError(
                f"{options['labels_file']}: {len(unknown)} images not in the "
                f"archive, e.g. {unknown[:3]}"
            )
        names = sorted({lab for *_, labs in records for lab in labs})
        col = {n: j for j, n in enumerate(names)}
        items = [
            Item(
                id=k.replace("/", "_"),
                image=f"{k}.jpg",
                text=text,
                labels=sorted({col[x] for x in labs}),
            )
            for k, text, labs in records
            if labs and text
        ]
        check_images(
            root / "images", [it.image for it in items], option(options, "check_images", True)
        )
        counts = {
            "images": len(records),
            "kept": len(items),
            "dropped_no_label_or_text": len(records) - len(items),
        }
        write_prepared(
            out,
            items,
            {
                "dataset": "iaprtc12",
                "label_names": names or ["none"],
                "image_root": "images",
                "text_kind": "caption",
                "source": "iaprtc12",
                "counts": counts,
            },
            files={"images": root / "images"},
        )
    return counts


SOURCE = Source(
    name="iaprtc12",
    title="IAPR TC-12",
    files=(
        Remote(
            ARCHIVE,
            ("http://www-i6.informatik.rwth-aachen.de/imageclef/resources/iaprtc12.tgz",),
            note="about 1.8 GB",
        ),
    ),
    prepare=prepare,
    size="20,000 images with captions; 255 labels (SAIAPR TC-12)",
    licence="free for research (IAPR TC-12 terms)",
    user_supplies="labels_file: the SAIAPR TC-12 labels, one line per image",
    options={"check_images": True},
)
