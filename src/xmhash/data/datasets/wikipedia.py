"""Wikipedia cross-modal dataset (Rasiwasia et al., ACM MM 2010).

Official archive ``wikipedia_dataset.zip`` (http://www.svcl.ucsd.edu/projects/crossmodal/):
``categories.list`` (10 names), ``trainset_txt_img_cat.list`` / ``testset_txt_img_cat.list``
(``<text id> <image id> <category 1..10>`` per line; 2,173 / 693 pairs),
``images/<category>/<image id>.jpg``, ``texts/<text id>.xml`` (``<text>`` element: the
article section), and ``raw_features.mat`` with the original features: ``I_tr``/``I_te``
(128-d SIFT bag of visual words) and ``T_tr``/``T_te`` (10-d LDA topic proportions).

Prepared: train pairs first, then test pairs, in list order; official split train ->
``train``, test -> ``query`` (use ``split.official: true``). The SIFT/LDA features are
imported as the feature file of encoder key ``wiki_sift_lda``, rows in the same order.
"""

from __future__ import annotations

import html
import re
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
    unpack,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

ARCHIVE = "wikipedia_dataset.zip"
ENCODER = "wiki_sift_lda"
_TEXT = re.compile(r"<text>(.*?)</text>", re.S | re.I)


def _pairs(root: Path) -> tuple[list[str], list[tuple[str, str, int, str]]]:
    names = [c.strip() for c in read_lines(root / "categories.list") if c.strip()]
    pairs = []
    for list_name, split in (
        ("trainset_txt_img_cat.list", "train"),
        ("testset_txt_img_cat.list", "query"),
    ):
        path = root / list_name
        for line_no, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3 or not parts[2].isdigit() or not 1 <= int(parts[2]) <= len(names):
                raise DatasetError(
                    f"{path}, line {line_no}: {line!r}, expected '<text id> "
                    f"<image id> <category 1..{len(names)}>'"
                )
            pairs.append((parts[0], parts[1], int(parts[2]) - 1, split))
    return names, pairs


def _text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace") if path.exists() else None
    if raw is None:
        raise DatasetError(f"{path}: text file missing")
    m = _TEXT.search(raw)
    if not m:
        raise DatasetError(f"{path}: no <text> element")
    return " ".join(html.unescape(m.group(1)).split())


def _unpacked(files: dict[str, Path], work: Path) -> Path:
    """The archive unpacked into ``work``: the folder holding the train/test lists."""
    return find_dir(
        unpack(files[ARCHIVE], work),
        "trainset_txt_img_cat.list",
        "the Wikipedia lists",
        files[ARCHIVE],
    )


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    with workdir(out) as work:
        root = _unpacked(files, work)
        names, pairs = _pairs(root)
        items = [
            Item(
                id=t,
                image=f"{names[c]}/{i}.jpg",
                text=_text(root / "texts" / f"{t}.xml"),
                labels=[c],
                split=s,
            )
            for t, i, c, s in pairs
        ]
        check_images(
            root / "images", [it.image for it in items], option(options, "check_images", True)
        )
        counts = {
            "train": sum(s == "train" for *_, s in pairs),
            "test": sum(s == "query" for *_, s in pairs),
            "kept": len(items),
        }
        write_prepared(
            out,
            items,
            {
                "dataset": "wikipedia",
                "label_names": names,
                "image_root": "images",
                "text_kind": "document",
                "source": "wikipedia",
                "counts": counts,
            },
            files={"images": root / "images"},
        )
    return counts


def import_features(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from xmhash.data.datasets.matfile import load_mat, take
    from xmhash.features.store import Features, write_features

    with workdir(out) as work:
        root = _unpacked(files, work)
        names, pairs = _pairs(root)
        mat_path = root / "raw_features.mat"
        mat = load_mat(mat_path)
        # errors name the user's archive, not the scratch directory it is unpacked in
        where = f"{files[ARCHIVE]}: its raw_features.mat"
        n_tr = sum(s == "train" for *_, s in pairs)
        n_te = len(pairs) - n_tr
        image = np.concatenate(
            [take(mat, where, "I_tr", rows=n_tr), take(mat, where, "I_te", rows=n_te)]
        )
        text = np.concatenate(
            [take(mat, where, "T_tr", rows=n_tr), take(mat, where, "T_te", rows=n_te)]
        )
    labels = np.zeros((len(pairs), len(names)), np.uint8)
    labels[np.arange(len(pairs)), [c for _, _, c, _ in pairs]] = 1
    write_features(
        out,
        Features(
            ids=np.array([t for t, *_ in pairs]),
            labels=labels,
            label_names=names,
            image=image.astype(np.float32),
            text=text.astype(np.float32),
            official_split=np.array([s for *_, s in pairs]),
            attrs={
                "dataset": "wikipedia",
                "encoder": ENCODER,
                "encoder_id": "rasiwasia2010: SIFT BoVW-128 (image), LDA-10 (text)",
                "encoder_revision": "",
                "preprocessing": {"source": "raw_features.mat"},
                "source": "wikipedia",
            },
        ),
    )
    return {"items": len(pairs), "image_dim": image.shape[1], "text_dim": text.shape[1]}


SOURCE = Source(
    name="wikipedia",
    title="Wikipedia (Rasiwasia et al.)",
    files=(
        Remote(ARCHIVE, ("http://www.svcl.ucsd.edu/projects/crossmodal/wikipedia_dataset.zip",)),
    ),
    prepare=prepare,
    import_features=import_features,
    encoder=ENCODER,
    size="2,866 pairs, 10 classes, official split 2,173 train / 693 test",
    licence="research use; images and texts from Wikipedia (CC BY-SA)",
    user_supplies="nothing (downloaded)",
    options={"check_images": True},
)
