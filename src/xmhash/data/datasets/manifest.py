"""Users' own data: a folder of images plus a manifest.

``manifest`` is a ``.csv`` (header ``image,text,labels`` and optionally ``id``; labels
separated by ``|``) or a ``.jsonl`` file (one object per line: ``image``, ``text``,
``labels`` as a list or a ``|``-separated string, optional ``id``). ``image`` is relative
to ``image_dir`` (default: the manifest's folder). Label names are the sorted distinct
labels, or ``label_names`` from the config. Every image must exist and decode: the bad
entries are reported together, with their line numbers; ``skip_missing`` leaves out the
entries whose image file is missing instead (naming them in the log and in the prepared
``meta.json``). Entries with an empty text are kept, with a warning that counts them.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import DatasetError, Source, check_image, option, setting
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)


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
    given = options.get("label_names")
    index = {n: j for j, n in enumerate(given)} if given else None
    parsed, bad, dropped = [], [], []
    missing_images = 0  # of the bad entries
    first_line: dict[str, int] = {}
    for line_no, row in read_manifest(path):
        missing = [k for k in ("image", "text", "labels") if k not in row or row[k] is None]
        if missing:
            bad.append(f"line {line_no}: missing {missing}")
            continue
        image = str(row["image"])
        where = root / image
        if not where.is_file():
            if option(options, "skip_missing", False):
                dropped.append(f"line {line_no}: {image!r}")
            else:
                bad.append(f"line {line_no}: image {image!r} not found at {where}")
                missing_images += 1
            continue
        if option(options, "check_images", True):
            try:
                check_image(where)
            except DatasetError as e:
                bad.append(f"line {line_no}: {e}")
                continue
        id_ = str(row.get("id") or line_no)
        if id_ in first_line:
            bad.append(
                f"line {line_no}: id {id_!r} is already used on line {first_line[id_]}; ids "
                f"must be unique (or leave the id empty: the line number is used)"
            )
            continue
        first_line[id_] = line_no
        labels = _labels(row["labels"])
        unknown = [lab for lab in labels if index is not None and lab not in index]
        if unknown:
            bad.append(f"line {line_no}: labels {unknown} not in label_names")
            continue
        parsed.append((line_no, id_, image, str(row["text"]), labels))
    if bad:
        raise DatasetError(
            f"{path}: {len(bad)} bad {'entry' if len(bad) == 1 else 'entries'}:\n  "
            + "\n  ".join(bad)
            + "\nFix them"
            + (
                f", or set {setting(options, 'skip_missing')}: true to leave out the "
                f"entries whose image is missing"
                if missing_images
                else ""
            )
        )
    if dropped:
        log.warning(
            "%s: left out %d entries whose image is missing (%s): %s",
            path,
            len(dropped),
            setting(options, "skip_missing"),
            "; ".join(dropped),
        )
    if parsed and not any(text.strip() for _, _, _, text, _ in parsed):
        raise DatasetError(
            f"{path}: the text of every row is empty; cross-modal hashing needs a text per "
            f"image: fill in the text column"
        )
    empty = [line_no for line_no, _, _, text, _ in parsed if not text.strip()]
    if empty:
        log.warning(
            "%s: %d of %d entries have an empty text (line%s %s); they are kept, and "
            "their text embedding is that of the empty string",
            path,
            len(empty),
            len(parsed),
            "" if len(empty) == 1 else "s",
            ", ".join(map(str, empty[:20])) + (", ..." if len(empty) > 20 else ""),
        )
    names = list(given or sorted({lab for *_, labels in parsed for lab in labels}))
    index = {n: j for j, n in enumerate(names)}
    items = [
        Item(id=id_, image=image, text=text, labels=[index[x] for x in labels])
        for _, id_, image, text, labels in parsed
    ]
    counts = {
        "kept": len(items),
        "unlabelled": sum(not it.labels for it in items),
        "empty_texts": len(empty),
        "missing_images_left_out": len(dropped),
    }
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
            "left_out": dropped,
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
    options={"check_images": True, "skip_missing": False},
)
