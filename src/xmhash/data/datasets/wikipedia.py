"""Wikipedia cross-modal dataset (Rasiwasia et al., ACM MM 2010).

Official archive ``wikipedia_dataset.zip`` (http://www.svcl.ucsd.edu/projects/crossmodal/):
``categories.list`` (10 names), ``trainset_txt_img_cat.list`` / ``testset_txt_img_cat.list``
(``<text id> <image id> <category 1..10>`` per line; 2,173 / 693 pairs),
``images/<category>/<image id>.jpg``, ``texts/<text id>.xml`` (``<text>`` element: the
article section), and ``raw_features.mat`` with the original features: ``I_tr``/``I_te``
(128-d SIFT bag of visual words) and ``T_tr``/``T_te`` (10-d LDA topic proportions).

The files are downloaded as that archive, or read from a folder (``root``) that holds
them already: the archive unpacked, or the features as they are commonly published without
images and texts (``raw_features.mat`` and the two lists; only the feature import works
then). ``categories.list`` is optional: without it the classes are named by their ids
(``1`` .. ``10``). Published copies of the train list carry a stray character before the
first text id (``Ab3150b...``); a leading character that is not part of an id's alphabet
(hex digits and ``-``) is dropped from the first line.

Prepared: train pairs first, then test pairs, in list order; official split train ->
``train``, test -> ``query`` (use ``split.official: true``). The SIFT features and the
text features are imported as the feature file of encoder key ``wiki_sift_lda``, rows in
the same order: the 10-d LDA topics (``text_feature: lda``) or, where the .mat has them,
the TF-IDF vectors ``T_tfidf_tr``/``T_tfidf_te`` (``text_feature: tfidf``).
"""

from __future__ import annotations

import html
import logging
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
    require,
    setting,
    unpack,
    workdir,
)
from xmhash.data.download import Remote
from xmhash.data.prepared import Item, write_prepared

log = logging.getLogger(__name__)

ARCHIVE = "wikipedia_dataset.zip"
ENCODER = "wiki_sift_lda"
LISTS = {"trainset_txt_img_cat.list": "train", "testset_txt_img_cat.list": "query"}
# text_feature -> (train key, test key) of raw_features.mat, and what it is
TEXT_FEATURES = {
    "lda": (("T_tr", "T_te"), "LDA-10"),
    "tfidf": (("T_tfidf_tr", "T_tfidf_te"), "TF-IDF"),
}
_TEXT = re.compile(r"<text>(.*?)</text>", re.S | re.I)
_ID_CHARS = frozenset("0123456789abcdef-")


def _pairs(root: Path) -> tuple[list[str], list[tuple[str, str, int, str]]]:
    """(class names, (text id, image id, class 0.., split) per pair), from the lists and
    ``categories.list`` (class ids as names without it)."""
    cats = root / "categories.list"
    names = [c.strip() for c in read_lines(cats) if c.strip()] if cats.exists() else None
    top = f"1..{len(names)}" if names else "1, 2, ..."
    pairs = []
    for list_name, split in LISTS.items():
        path = root / list_name
        for line_no, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            parts = line.split()
            cat = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
            if cat < 1 or (names and cat > len(names)):
                raise DatasetError(
                    f"{path}, line {line_no}: {line!r}, expected '<text id> "
                    f"<image id> <category {top}>'"
                )
            text_id = parts[0]
            if line_no == 1 and text_id[0] not in _ID_CHARS and set(text_id[1:]) <= _ID_CHARS:
                log.info("%s, line 1: stray %r before the text id dropped", path, text_id[0])
                text_id = text_id[1:]
            pairs.append((text_id, parts[1], cat - 1, split))
    if names is None:
        names = [str(c + 1) for c in range(max(c for _, _, c, _ in pairs) + 1)]
    return names, pairs


def _text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace") if path.exists() else None
    if raw is None:
        raise DatasetError(f"{path}: text file missing")
    m = _TEXT.search(raw)
    if not m:
        raise DatasetError(f"{path}: no <text> element")
    return " ".join(html.unescape(m.group(1)).split())


def _root(files: dict[str, Path], options: dict[str, Any], work: Path) -> tuple[Path, str]:
    """The folder holding the train/test lists (``root``, or the archive unpacked into
    ``work``), and how errors name what is in it (the user's file, not the scratch
    directory the archive is unpacked in)."""
    marker = next(iter(LISTS))
    folder = options.get("root")
    if folder:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise DatasetError(f"{path}: no such folder ({setting(options, 'root')})")
        root = find_dir(path, marker, "the Wikipedia lists")
        return root, str(root / "raw_features.mat")
    root = find_dir(unpack(files[ARCHIVE], work), marker, "the Wikipedia lists", files[ARCHIVE])
    return root, f"{files[ARCHIVE]}: its raw_features.mat"


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    with workdir(out) as work:
        root, _ = _root(files, options, work)
        names, pairs = _pairs(root)
        require(
            root / "texts",
            f"the texts of the Wikipedia archive; a folder with the features only is "
            f"imported with encoder: {ENCODER}",
        )
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

    kind = option(options, "text_feature", "lda")
    if kind not in TEXT_FEATURES:
        raise DatasetError(
            f"config.yaml: {setting(options, 'text_feature')} {kind!r}, expected one of "
            f"{sorted(TEXT_FEATURES)}"
        )
    (text_tr, text_te), text_name = TEXT_FEATURES[kind]
    with workdir(out) as work:
        root, where = _root(files, options, work)
        names, pairs = _pairs(root)
        mat = load_mat(root / "raw_features.mat")
        n_tr = sum(s == "train" for *_, s in pairs)
        n_te = len(pairs) - n_tr
        image = np.concatenate(
            [take(mat, where, "I_tr", rows=n_tr), take(mat, where, "I_te", rows=n_te)]
        )
        text = np.concatenate(
            [take(mat, where, text_tr, rows=n_tr), take(mat, where, text_te, rows=n_te)]
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
                "encoder_id": f"rasiwasia2010: SIFT BoVW-{image.shape[1]} (image), "
                f"{text_name} (text)",
                "encoder_revision": "",
                "preprocessing": {"source": "raw_features.mat", "text_feature": kind},
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
    user_supplies="nothing (downloaded), or the unpacked files in a folder (root)",
    options={"check_images": True, "text_feature": "lda"},
    folder="root",
)
