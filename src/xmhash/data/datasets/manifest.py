"""Users' own data: a folder of images plus a manifest.

``manifest`` is a ``.csv`` (header ``image,text,labels`` and optionally ``id``; labels
separated by ``|``) or a ``.jsonl`` file (one object per line: ``image``, ``text``,
``labels`` as a list or a ``|``-separated string, optional ``id``). ``image`` is relative
to ``image_dir`` (default: the manifest's folder). Label names are the sorted distinct
labels, or ``label_names`` from the config. Every image must exist and decode.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import DatasetError, Source, check_image, option, setting
from xmhash.data.prepared import Item, write_prepared


def read_manifest(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs."""
    if not path.is_file():
        raise DatasetError(f"{path}: manifest file missing")
    rows = []
    if path.suffix.lower() == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append((line_no, json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise DatasetError(f"{path}, line {line_no}: not JSON ({e})") from None
    elif path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"image", "text", "labels"} - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(
                    f"{path}: header lacks columns {sorted(missing)}; expected "
                    f"image,text,labels[,id]"
                )
            rows = [(line_no, row) for line_no, row in enumerate(reader, 2)]
    else:
        raise DatasetError(f"{path}: manifest must be .csv or .jsonl")
    return rows


def _labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split("|") if v.strip()]


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    if not options.get("manifest"):
        raise DatasetError(
            f"config.yaml: {setting(options, 'manifest')} is empty; set it to your .csv "
            f"or .jsonl manifest (columns image, text, labels)"
        )
    path = Path(options["manifest"]).expanduser().resolve()
    root = Path(option(options, "image_dir", path.parent)).expanduser().resolve()
    rows = read_manifest(path)
    parsed = []
    first_line: dict[str, int] = {}
    for line_no, row in rows:
        missing = [k for k in ("image", "text", "labels") if k not in row or row[k] is None]
        if missing:
            raise DatasetError(f"{path}, line {line_no}: missing {missing}")
        image = str(row["image"])
        where = root / image
        if not where.is_file():
            raise DatasetError(f"{path}, line {line_no}: image {image!r} not found at {where}")
        if option(options, "check_images", True):
            check_image(where)
        id_ = str(row.get("id") or line_no)
        if id_ in first_line:
            raise DatasetError(
                f"{path}, line {line_no}: id {id_!r} is already used on line "
                f"{first_line[id_]}; ids must be unique (or leave the id empty: the line "
                f"number is used)"
            )
        first_line[id_] = line_no
        parsed.append((id_, image, str(row["text"]), _labels(row["labels"])))
    if parsed and not any(text.strip() for _, _, text, _ in parsed):
        raise DatasetError(
            f"{path}: the text of every row is empty; cross-modal hashing needs a text per "
            f"image: fill in the text column"
        )
    names = list(options.get("label_names") or sorted({lab for *_, ls in parsed for lab in ls}))
    index = {n: j for j, n in enumerate(names)}
    items = []
    for (id_, image, text, labels), (line_no, _) in zip(parsed, rows, strict=True):
        unknown = [lab for lab in labels if lab not in index]
        if unknown:
            raise DatasetError(f"{path}, line {line_no}: labels {unknown} not in label_names")
        items.append(Item(id=id_, image=image, text=text, labels=[index[x] for x in labels]))
    counts = {"kept": len(items), "unlabelled": sum(not it.labels for it in items)}
    write_prepared(
        out,
        items,
        {
            "dataset": options.get("name", "manifest"),
            "label_names": names,
            "image_root": str(root),
            "text_kind": "caption",
            "source": "manifest",
            "manifest": str(path),
            "counts": counts,
        },
    )
    return counts


SOURCE = Source(
    name="manifest",
    title="your own data (folder + manifest)",
    files=(),
    prepare=prepare,
    size="any",
    licence="yours",
    user_supplies="an image folder and a CSV/JSONL manifest (image, text, labels)",
    options={"check_images": True},
)
