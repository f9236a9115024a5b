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


def tar_gz_bytes(members: dict[str, bytes | str]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def mat_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays)
    return buf.getvalue()


WIKI_CATEGORIES = ["art", "biology", "geography", "history", "literature", "media", "music",
                   "royalty", "sport", "warfare"]  # fmt: skip


def wikipedia_members(
    n_train: int = 12, n_test: int = 5, seed: int = 0
) -> tuple[dict[str, bytes | str], dict]:
    """The files of the Wikipedia archive in miniature (relative path -> content: the
    lists, ``images/``, ``texts/`` and ``raw_features.mat``, with TF-IDF texts as in the
    published feature file) and what they hold."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes | str] = {"categories.list": "\n".join(WIKI_CATEGORIES) + "\n"}
    truth = {"ids": [], "labels": [], "split": [], "texts": []}
    for list_name, n, split in (
        ("trainset_txt_img_cat.list", n_train, "train"),
        ("testset_txt_img_cat.list", n_test, "query"),
    ):
        lines = []
        for _ in range(n):
            txt, img = (
                f"{rng.integers(1 << 60):016x}-{rng.integers(1, 9)}",
                f"{rng.integers(1 << 60):016x}",
            )
            cat = int(rng.integers(1, 11))
            lines.append(f"{txt}\t{img}\t{cat}")
            members[f"images/{WIKI_CATEGORIES[cat - 1]}/{img}.jpg"] = jpeg(len(members))
            body = f"Section about {WIKI_CATEGORIES[cat - 1]} &amp; more,\n  item {txt[:4]}."
            members[f"texts/{txt}.xml"] = (
                f'<?xml version="1.0"?>\n<document><docno>{txt}'
                f"</docno><text>{body}</text></document>\n"
            )
            truth["ids"].append(txt)
            truth["labels"].append(cat - 1)
            truth["split"].append(split)
            truth["texts"].append(
                f"Section about {WIKI_CATEGORIES[cat - 1]} & more, item {txt[:4]}."
            )
        members[list_name] = "\n".join(lines) + "\n"
    feats = {
        "I_tr": rng.random((n_train, 128)),
        "T_tr": rng.random((n_train, 10)),
        "I_te": rng.random((n_test, 128)),
        "T_te": rng.random((n_test, 10)),
        "T_tfidf_tr": rng.random((n_train, 30)),
        "T_tfidf_te": rng.random((n_test, 30)),
    }
    members["raw_features.mat"] = mat_bytes(feats)
    truth["image"] = np.concatenate([feats["I_tr"], feats["I_te"]])
    truth["text"] = np.concatenate([feats["T_tr"], feats["T_te"]])
    truth["tfidf"] = np.concatenate([feats["T_tfidf_tr"], feats["T_tfidf_te"]])
    return members, truth


def wikipedia_archive(n_train: int = 12, n_test: int = 5, seed: int = 0) -> tuple[bytes, dict]:
    """``wikipedia_dataset.zip`` in miniature (``wikipedia_dataset/`` holding
    :func:`wikipedia_members`) and what it holds."""
    members, truth = wikipedia_members(n_train, n_test, seed)
    members = {f"wikipedia_dataset/{k}": v for k, v in members.items()}  # the zip's top folder
    return zip_bytes(members), truth


FEATURES_ONLY = ("raw_features.mat", "trainset_txt_img_cat.list", "testset_txt_img_cat.list")


def wikipedia_folder(
    root: Path, *, only: tuple[str, ...] = (), stray_a: bool = False, **kw
) -> tuple[Path, dict]:
    """The miniature Wikipedia files written into the folder ``root`` (all of them, or
    only those named in ``only``, e.g. :data:`FEATURES_ONLY`: the layout in which the
    features are published); ``stray_a`` puts a stray "A" before the first text id, as in
    the published train list."""
    members, truth = wikipedia_members(**kw)
    if stray_a:
        members["trainset_txt_img_cat.list"] = "A" + members["trainset_txt_img_cat.list"]
    for rel, content in members.items():
        if only and rel not in only:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root, truth


def nuswide_files(
    tag_vocab: list[str],
    n: int = 40,
    n_concepts: int = 25,
    seed: int = 0,
) -> tuple[dict[str, bytes], dict[str, bytes], dict]:
    """The four official NUS-WIDE files and the user's image folder (relative path ->
    bytes), with the raw matrices for assertions."""
    rng = np.random.default_rng(seed)
    concepts = [f"concept{j:02d}" for j in range(n_concepts)]
    p = np.linspace(0.5, 0.02, n_concepts)
    labels = (rng.random((n, n_concepts)) < p).astype(np.uint8)
    tags = (rng.random((n, len(tag_vocab))) < 0.004).astype(np.uint8)
    tags[::7] = 0  # some images have no tag
    paths = [f"{concepts[i % n_concepts]}/{i:04d}_{rng.integers(10**9)}.jpg" for i in range(n)]
    official = {
        "NUS_WID_Tags.zip": zip_bytes(
            {
                "TagList1k.txt": "\n".join(tag_vocab) + "\n",
                "AllTags1k.txt": "".join("\t".join(map(str, r)) + "\t\n" for r in tags),
            }
        ),
        "Groundtruth.zip": zip_bytes(
            {
                f"Groundtruth/AllLabels/Labels_{c}.txt": "".join(f"{v}\n" for v in labels[:, j])
                for j, c in enumerate(concepts)
            }
        ),
        "ImageList.zip": zip_bytes(
            {
                "ImageList/Imagelist.txt": "".join(
                    "C:\\ImageData\\Flickr\\" + q.replace("/", "\\") + "\n" for q in paths
                )
            }
        ),
        "Concepts81.txt": ("\n".join(concepts) + "\n").encode(),
    }
    images = {q: jpeg(i) for i, q in enumerate(paths)}
    return official, images, {"labels": labels, "tags": tags, "paths": paths, "concepts": concepts}


def coco_archives() -> tuple[dict[str, bytes], dict]:
    import json

    cats = [
        {"id": i, "name": n, "supercategory": "x"}
        for i, n in ((1, "person"), (3, "car"), (18, "dog"), (90, "toothbrush"))
    ]
    out, truth = {}, {"ids": [], "labels": {}}
    notes = {}
    for part, ids in (("train2014", [9, 25, 30]), ("val2014", [42, 73])):
        images = [{"id": i, "file_name": f"COCO_{part}_{i:012d}.jpg"} for i in ids]
        anns = [
            {"id": 100 + k, "image_id": i, "category_id": c}
            for k, (i, c) in enumerate([(ids[0], 18), (ids[0], 1), (ids[0], 18), (ids[-1], 90)])
        ]
        caps = [
            {"id": 500 + 10 * k + j, "image_id": i, "caption": f" a photo {i}-{j} "}
            for k, i in enumerate(ids)
            for j in range(5)
        ]
        notes[f"annotations/instances_{part}.json"] = json.dumps(
            {"images": images, "annotations": anns, "categories": cats}
        )
        notes[f"annotations/captions_{part}.json"] = json.dumps(
            {"images": images, "annotations": caps}
        )
        out[f"{part}.zip"] = zip_bytes(
            {f"{part}/{im['file_name']}": jpeg(im["id"]) for im in images}
        )
        for im in images:
            labs = sorted(
                {[1, 3, 18, 90].index(a["category_id"]) for a in anns if a["image_id"] == im["id"]}
            )
            if labs:
                truth["ids"].append(str(im["id"]))
                truth["labels"][str(im["id"])] = labs
    out["annotations_trainval2014.zip"] = zip_bytes(notes)
    return out, truth
