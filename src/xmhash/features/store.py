"""The feature file: the only module that knows its HDF5 layout.

One file per dataset x encoder, ``results/{dataset}/features/{encoder}.h5``. Readable
with plain h5py::

    /ids                  (N,)      utf-8 str   item ids, in dataset order
    /labels               (N, C)    uint8       multi-hot labels
    /label_names          (C,)      utf-8 str
    /image                (N, Di)   float32     global image embeddings
    /text                 (N, Dt)   float32     global text embeddings
    /texts                (N,)      utf-8 str   the text that was embedded (optional)
    /words/embeddings     (W, Dt)   float32     one embedding per word/tag (optional)
    /words/offsets        (N+1,)    int64       item i owns rows offsets[i]:offsets[i+1]
    /words/tokens         (W,)      utf-8 str
    /regions/embeddings   (R, Di)   float32     one embedding per image region (optional)
    /regions/offsets      (N+1,)    int64
    /regions/boxes        (R, 4)    float32     x0, y0, x1, y1 in pixels; the whole image last
    /official_split       (N,)      utf-8 str   the dataset's official split per item:
                                                query/database/train/val or "" (optional)
    /skipped              (S,)      utf-8 str   ids of items left out (unreadable images)

Root attributes: ``schema_version``, ``xmhash_version``, ``dataset``, ``encoder`` (the
short key), ``encoder_id``, ``encoder_revision``, ``preprocessing`` (JSON), ``image_dim``,
``text_dim``, plus whatever the producer adds (all JSON-serialisable scalars or strings).
The feature stage adds ``texts_truncated`` (texts cut to ``text_max_tokens``),
``words_unit``, ``regions`` (JSON settings), ``text_kind``, ``n_source_items`` and the
``transformers``/``torch`` versions.

Datasets are chunked and gzip-compressed. Files are written atomically: whole, by
:func:`write_features`, or chunk by chunk, by :class:`FeatureWriter`, which keeps each
finished chunk as a small feature file of its own in a resumable partial directory next
to the output and joins them into the output at the end.
One writer at a time: a :class:`FeatureWriter` holds an exclusive lock on a sidecar
``.{name}.lock`` (naming its pid and host) for its lifetime, and a second writer stops
with :class:`FeatureFileBusy` instead of touching the partial directory.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xmhash import __version__
from xmhash.io import atomic_path

SCHEMA_VERSION = 1
_STR = h5py.string_dtype("utf-8")
log = logging.getLogger(__name__)


class FeatureFileError(ValueError):
    """A feature file is missing a part or has the wrong shape; the message names both."""


class FeatureFileBusy(FeatureFileError):
    """Another process is writing the same feature file; the message names it."""


@dataclass
class Ragged:
    """Variable-length rows per item (words of a text, regions of an image)."""

    embeddings: np.ndarray  # (total, D) float32
    offsets: np.ndarray  # (N+1,) int64
    names: np.ndarray | None = None  # (total,) tokens (words) or None
    boxes: np.ndarray | None = None  # (total, 4) boxes (regions) or None

    def rows(self, i: int) -> np.ndarray:
        return self.embeddings[self.offsets[i] : self.offsets[i + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, items: np.ndarray) -> Ragged:
        """The rows of ``items`` only, in that order, with new offsets."""
        items = np.asarray(items, np.int64)
        starts, ends = self.offsets[items], self.offsets[items + 1]
        take = (
            np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
            if len(items)
            else np.zeros(0, np.int64)
        ).astype(np.int64)
        return Ragged(
            embeddings=self.embeddings[take],
            offsets=np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64),
            names=self.names[take] if self.names is not None else None,
            boxes=self.boxes[take] if self.boxes is not None else None,
        )


@dataclass
class Features:
    ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N, C) uint8
    image: np.ndarray  # (N, Di) float32
    text: np.ndarray  # (N, Dt) float32
    label_names: list[str] = field(default_factory=list)
    texts: np.ndarray | None = None
    words: Ragged | None = None
    regions: Ragged | None = None
    official_split: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def validate(self, source: str = "features") -> None:
        n = len(self.ids)
        _expect(
            self.labels.ndim == 2 and self.labels.shape[0] == n,
            source,
            "labels",
            f"(N={n}, C)",
            self.labels.shape,
        )
        for key in ("image", "text"):
            arr = getattr(self, key)
            _expect(arr.ndim == 2 and arr.shape[0] == n, source, key, f"(N={n}, D)", arr.shape)
            if not np.isfinite(arr).all():
                bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
                raise FeatureFileError(
                    f"{source}: /{key} has NaN/Inf embeddings for items "
                    f"{[str(self.ids[i]) for i in bad[:5]]}"
                )
        if self.label_names:
            _expect(
                len(self.label_names) == self.labels.shape[1],
                source,
                "label_names",
                f"({self.labels.shape[1]},)",
                (len(self.label_names),),
            )
        for key in ("texts", "official_split"):
            arr = getattr(self, key)
            if arr is not None:
                _expect(len(arr) == n, source, key, f"({n},)", np.shape(arr))
        for key in ("words", "regions"):
            rag = getattr(self, key)
            if rag is not None:
                _expect(
                    rag.offsets.shape == (n + 1,),
                    source,
                    f"{key}/offsets",
                    f"({n + 1},)",
                    rag.offsets.shape,
                )
                _expect(
                    int(rag.offsets[-1]) == len(rag.embeddings),
                    source,
                    f"{key}/embeddings",
                    f"({int(rag.offsets[-1])}, D)",
                    rag.embeddings.shape,
                )


def _expect(ok: bool, source: str, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise FeatureFileError(f"{source}: /{key} has shape {tuple(got)}, expected {expected}")


def _chunks(shape: Sequence[int], row_bytes: int) -> tuple[int, ...] | None:
    if not shape or shape[0] == 0:
        return None
    rows = max(1, min(shape[0], (1 << 20) // max(row_bytes, 1)))  # ~1 MiB chunks
    return (rows, *shape[1:])


def _write_array(group: h5py.Group, name: str, data: np.ndarray) -> None:
    data = np.asarray(data)
    if data.dtype.kind in "UO":
        group.create_dataset(
            name,
            data=data.astype(object),
            dtype=_STR,
            chunks=_chunks(data.shape, 64),
            compression="gzip",
        )
        return
    row_bytes = data.dtype.itemsize * int(np.prod(data.shape[1:], dtype=np.int64))
    group.create_dataset(
        name,
        data=data,
        chunks=_chunks(data.shape, row_bytes),
        compression="gzip",
        compression_opts=4,
        shuffle=True,
    )


def base_attrs(**extra: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "xmhash_version": __version__, **extra}


def write_features(path: str | os.PathLike, feats: Features) -> None:
    """Write ``feats`` to ``path`` atomically (validating shapes and finiteness first)."""
    feats.validate(str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_array(f, "ids", feats.ids.astype(str))
        _write_array(f, "labels", feats.labels.astype(np.uint8))
        _write_array(f, "label_names", np.asarray(feats.label_names, dtype=str))
        _write_array(f, "image", feats.image.astype(np.float32))
        _write_array(f, "text", feats.text.astype(np.float32))
        for key in ("texts", "official_split"):
            if getattr(feats, key) is not None:
                _write_array(f, key, np.asarray(getattr(feats, key), dtype=str))
        for key in ("words", "regions"):
            rag: Ragged | None = getattr(feats, key)
            if rag is None:
                continue
            g = f.create_group(key)
            _write_array(g, "embeddings", rag.embeddings.astype(np.float32))
            _write_array(g, "offsets", rag.offsets.astype(np.int64))
            if rag.names is not None:
                _write_array(g, "tokens", np.asarray(rag.names, dtype=str))
            if rag.boxes is not None:
                _write_array(g, "boxes", rag.boxes.astype(np.float32))
        _write_array(f, "skipped", np.asarray(feats.skipped, dtype=str))
        attrs = base_attrs(image_dim=int(feats.image.shape[1]), text_dim=int(feats.text.shape[1]))
        attrs.update(feats.attrs)
        for k, v in attrs.items():
            f.attrs[k] = json.dumps(v) if isinstance(v, dict | list) else v


def _open(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature file not found: {path}")
    f = h5py.File(path, "r")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        f.close()
        raise FeatureFileError(
            f"{path}: schema_version {version}, this xmhash reads "
            f"{SCHEMA_VERSION}; rebuild the feature file"
        )
    return f


def _need(f: h5py.File, key: str) -> h5py.Dataset:
    if key not in f:
        raise FeatureFileError(f"{f.filename}: missing /{key}")
    return f[key]


def _strings(ds: h5py.Dataset) -> np.ndarray:
    return ds.asstr()[()] if len(ds) else np.array([], dtype=object)


def _read_ragged(f: h5py.File, key: str) -> Ragged | None:
    if key not in f:
        return None
    g = f[key]
    return Ragged(
        embeddings=g["embeddings"][()],
        offsets=g["offsets"][()],
        names=_strings(g["tokens"]) if "tokens" in g else None,
        boxes=g["boxes"][()] if "boxes" in g else None,
    )


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    with _open(path) as f:
        return {k: _attr(v) for k, v in f.attrs.items()}


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v.item() if hasattr(v, "item") else v


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Only the (N, C) label matrix: what evaluation and splitting need."""
    with _open(path) as f:
        return _need(f, "labels")[()]


def read_ids(path: str | os.PathLike) -> np.ndarray:
    with _open(path) as f:
        return _strings(_need(f, "ids"))


def read_official_split(path: str | os.PathLike) -> np.ndarray:
    """The dataset's official split per item (query/database/train/val/"")."""
    with _open(path) as f:
        return _strings(_need(f, "official_split"))


def read_features(
    path: str | os.PathLike,
    *,
    parts: Sequence[str] = ("image", "text"),
) -> Features:
    """Read ids, labels and the requested optional ``parts``.

    ``parts`` may hold ``image``, ``text``, ``texts``, ``words``, ``regions``. Parts not
    asked for are returned empty (shape (N, 0)) or None, so a caller cannot use them by
    accident.
    """
    unknown = set(parts) - {"image", "text", "texts", "words", "regions"}
    if unknown:
        raise ValueError(f"unknown feature parts {sorted(unknown)}")
    with _open(path) as f:
        ids = _strings(_need(f, "ids"))
        n = len(ids)
        empty = np.zeros((n, 0), np.float32)
        feats = Features(
            ids=ids,
            labels=_need(f, "labels")[()],
            label_names=list(_strings(f["label_names"])) if "label_names" in f else [],
            image=_need(f, "image")[()] if "image" in parts else empty,
            text=_need(f, "text")[()] if "text" in parts else empty,
            texts=_strings(_need(f, "texts")) if "texts" in parts else None,
            words=_read_ragged(f, "words") if "words" in parts else None,
            regions=_read_ragged(f, "regions") if "regions" in parts else None,
            official_split=_strings(f["official_split"]) if "official_split" in f else None,
            skipped=list(_strings(f["skipped"])) if "skipped" in f else [],
            attrs={k: _attr(v) for k, v in f.attrs.items()},
        )
        for key in ("words", "regions"):
            if key in parts and getattr(feats, key) is None:
                raise FeatureFileError(
                    f"{path}: missing /{key}; this method needs {key}-level "
                    f"embeddings (see the feature stage's settings)"
                )
    feats.validate(str(path))
    return feats


# ---------------------------------------------------------------- streaming, resumable writes
# The feature stage writes one chunk of items at a time into a partial directory next to
# the output (``.{name}.resume.partial/``): each chunk is a small feature file of its own,
# ``chunk-000000.h5``, ``chunk-000001.h5``, ..., written whole under a temporary name and
# renamed into place, so a kill at any instant leaves every committed chunk intact and at
# most the chunk in progress missing. Each chunk records the resume fingerprint, the
# input items consumed up to its end, its counters and a sha256 of its content. A
# restarted run with the same fingerprint reads the chunks back in order and checks each
# digest (a full disk or a crash can leave damaged data that HDF5 only reports when
# read): it keeps the chunks before the first missing or damaged one, drops that one and
# those after it (with a warning naming the item it redoes from), and carries on.
# ``finish`` checks that every item was written, concatenates the chunks (checking each
# against the digest this writer recorded) into the output, written atomically, and
# removes the partial directory. The writer holds the sidecar lock from start to finish,
# so a second writer (an orphaned job of a killed workflow, a concurrent run) never
# deletes, resumes or renames a partial directory that is being written.

_RESUME = "_resume"
_CHUNK = "chunk-{:06d}.h5"
_DAMAGED = (OSError, ValueError, KeyError, TypeError)  # reading a damaged chunk (HDF5, JSON)


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.resume.partial")


def lock_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class _WriterLock:
    """An exclusive ``flock`` on a sidecar file that names its holder (pid, host, start)."""

    def __init__(self, output: Path):
        self.path = lock_path(output)
        self.fd: int | None = None
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
                os.close(fd)
                raise FeatureFileBusy(
                    f"{output}: another process is writing this feature file "
                    f"({holder or 'holder unknown'}; lock {self.path}). Wait for it to "
                    f"finish, or stop that process, then run again: its partial directory "
                    f"{partial_path(output)} is resumed, not recomputed"
                ) from None
            try:  # the holder before us may have removed the file we opened: retry
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.fd = fd
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.ftruncate(self.fd, 0)
        os.pwrite(
            self.fd,
            f"pid {os.getpid()} on host {socket.gethostname()}, since {stamp}\n".encode(),
            0,
        )

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # still locked: nobody can take the old inode
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _hash_rows(digest: Any, data: np.ndarray, strings: bool) -> None:
    if strings:
        for value in data:
            raw = (value.decode() if isinstance(value, bytes) else str(value)).encode()
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
    else:
        digest.update(np.ascontiguousarray(data).tobytes())


def _content_digest(feats: Features) -> str:
    """A sha256 of a chunk's content, as written (dtypes as stored) and as read back."""
    digest = hashlib.sha256()
    arrays: list[tuple[np.ndarray | list[str] | None, Any]] = [
        (feats.ids, None),
        (feats.labels, np.uint8),
        (feats.image, np.float32),
        (feats.text, np.float32),
        (feats.texts, None),
        (feats.official_split, None),
        (feats.skipped, None),
    ]
    for rag in (feats.words, feats.regions):
        if rag is not None:
            arrays += [(rag.embeddings, np.float32), (rag.offsets, np.int64)]
            arrays += [(rag.names, None), (rag.boxes, np.float32)]
    for data, dtype in arrays:
        if data is None:
            digest.update(b"-")
            continue
        arr = np.asarray(data, dtype=object if dtype is None else dtype)
        digest.update(repr(arr.shape).encode())
        _hash_rows(digest, arr, dtype is None)
    return digest.hexdigest()


class FeatureWriter:
    """Append chunks of items (each a :class:`Features` with chunk-local offsets)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fingerprint: str,
        n_labels: int,
        image_dim: int,
        text_dim: int,
        words: bool = False,
        regions: bool = False,
        resume: bool = True,
    ):
        self.path = Path(path)
        self.partial = partial_path(path)
        self.fingerprint = fingerprint
        self.layout = {
            "n_labels": int(n_labels),
            "image_dim": int(image_dim),
            "text_dim": int(text_dim),
            "words": bool(words),
            "regions": bool(regions),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []  # per committed chunk: consumed, counters, digest
        self._lock = _WriterLock(self.path)
        try:
            if not resume or not self._resumable():
                self._remove_partial()
            self.partial.mkdir(exist_ok=True)
            self._inode = os.stat(self.partial).st_ino
            self._resume()
        except BaseException:
            self.close()
            raise

    # -- setup

    def _parts(self) -> tuple[str, ...]:
        return ("image", "text", "texts") + tuple(
            key for key in ("words", "regions") if self.layout[key]
        )

    def _chunk(self, k: int) -> Path:
        return self.partial / _CHUNK.format(k)

    def _remove_partial(self) -> None:
        if self.partial.is_dir():
            shutil.rmtree(self.partial)
        else:
            self.partial.unlink(missing_ok=True)

    def _resumable(self) -> bool:
        """Whether the partial directory (if any) is one to resume; says why not."""
        if not self.partial.exists():
            return True
        if not self.partial.is_dir():
            log.warning(
                "%s: partial file of an older xmhash; starting over from item 0", self.partial
            )
            return False
        first = self._chunk(0)
        if not first.exists():
            return True
        try:
            state = read_attrs(first)[_RESUME]
            same = (state["fingerprint"], state["layout"]) == (self.fingerprint, self.layout)
        except _DAMAGED:
            return True  # damaged: the resume below says so and redoes chunk 0
        if not same:
            log.warning(
                "%s: partial directory from other inputs or settings; starting over from item 0",
                self.partial,
            )
        return same

    def _resume(self) -> None:
        """Keep the committed chunks up to the first missing or damaged one."""
        for entry in self.partial.iterdir():  # chunks' temporaries of a killed writer
            if _chunk_index(entry.name) is not None:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        k = 0
        while self._chunk(k).exists():
            try:
                self.records.append(self._verified_record(k))
            except _DAMAGED as e:
                log.warning(
                    "%s: damaged chunk %d (%s); redoing it and what follows, from item %d",
                    self.partial,
                    k,
                    e,
                    self.consumed,
                )
                break
            k += 1
        for entry in self.partial.iterdir():
            index = _chunk_index(entry.name)
            if index is not None and index >= self.chunks:
                entry.unlink()
        if self.records:
            log.info(
                "%s: resuming after %d chunks (%d items done, content verified)",
                self.partial,
                self.chunks,
                self.consumed,
            )

    def _verified_record(self, k: int) -> dict[str, Any]:
        path = self._chunk(k)
        state = read_attrs(path)[_RESUME]
        if (state["fingerprint"], state["layout"], state["chunk"]) != (
            self.fingerprint,
            self.layout,
            k,
        ):
            raise ValueError("written for other inputs or settings")
        record = {key: state[key] for key in ("consumed", "counters", "digest")}
        self._read_chunk(k, record)
        return record

    def _read_chunk(self, k: int, record: dict[str, Any]) -> Features:
        path = self._chunk(k)
        if not path.exists():
            raise FeatureFileError(
                f"{path}: committed chunk removed while this process wrote it; run the "
                f"stage again, it redoes this chunk"
            )
        chunk = read_features(path, parts=self._parts())
        if _content_digest(chunk) != record["digest"]:
            raise FeatureFileError(
                f"{path}: differs from what was committed (changed since it was written); "
                f"run the stage again, it redoes this chunk"
            )
        return chunk

    # -- progress

    @property
    def consumed(self) -> int:
        """Input items already processed (written or skipped): where to resume."""
        return int(self.records[-1]["consumed"]) if self.records else 0

    @property
    def chunks(self) -> int:
        return len(self.records)

    @property
    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for record in self.records:
            for k, v in record["counters"].items():
                total[k] = total.get(k, 0) + int(v)
        return total

    def append(self, chunk: Features, *, consumed: int, **counters: int) -> None:
        """Write one chunk; ``consumed`` input items are then done; ``counters`` add up."""
        k, n = self.chunks, len(chunk)
        for key in ("words", "regions"):
            if self.layout[key] and getattr(chunk, key) is None:
                raise FeatureFileError(f"{self.partial}: chunk without {key}, expected them")
        blank = np.asarray([""] * n, dtype=object)
        chunk = dataclasses.replace(
            chunk,
            texts=blank if chunk.texts is None else chunk.texts,
            official_split=blank if chunk.official_split is None else chunk.official_split,
            words=chunk.words if self.layout["words"] else None,
            regions=chunk.regions if self.layout["regions"] else None,
        )
        record = {
            "consumed": int(consumed),
            "counters": {key: int(v) for key, v in counters.items()},
            "digest": _content_digest(chunk),
        }
        state = {"fingerprint": self.fingerprint, "layout": self.layout, "chunk": k, **record}
        chunk.attrs = {_RESUME: json.dumps(state)}
        write_features(self._chunk(k), chunk)  # validates; whole or not at all
        self.records.append(record)

    def finish(
        self, *, label_names: Sequence[str], attrs: dict[str, Any], items: int | None = None
    ) -> None:
        """Check the partial directory is complete (``items`` input items consumed, still
        the directory this writer opened, every chunk as this writer committed it), write
        the chunks one after the other into the output, atomically, and remove the
        partial directory and the lock."""
        if items is not None and self.consumed != items:
            raise FeatureFileError(
                f"{self.partial}: {self.consumed} of {items} items written; not finishing "
                f"an incomplete feature file (run the stage again to resume)"
            )
        try:
            same = os.stat(self.partial).st_ino == self._inode
        except FileNotFoundError:
            same = False
        if not same:
            raise FeatureFileError(
                f"{self.partial} was removed or replaced while this process wrote it; "
                f"run the stage again"
            )
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            self._concatenate(f, label_names, attrs)
        shutil.rmtree(self.partial, ignore_errors=True)
        self._lock.release()

    def _concatenate(self, f: h5py.File, label_names: Sequence[str], attrs: dict[str, Any]):
        lay = self.layout
        for name in ("ids", "texts", "official_split", "skipped"):
            _resizable(f, name, (), _STR)
        _resizable(f, "labels", (lay["n_labels"],), np.uint8)
        _resizable(f, "image", (lay["image_dim"],), np.float32)
        _resizable(f, "text", (lay["text_dim"],), np.float32)
        for key, dim in (("words", lay["text_dim"]), ("regions", lay["image_dim"])):
            if not lay[key]:
                continue
            g = f.create_group(key)
            _resizable(g, "embeddings", (dim,), np.float32)
            _append(_resizable(g, "offsets", (), np.int64), np.zeros(1, np.int64))
            if key == "words":
                _resizable(g, "tokens", (), _STR)
            else:
                _resizable(g, "boxes", (4,), np.float32)
        for k, record in enumerate(self.records):
            chunk = self._read_chunk(k, record)
            _append(f["ids"], np.asarray(chunk.ids, dtype=object))
            _append(f["labels"], chunk.labels)
            _append(f["image"], chunk.image)
            _append(f["text"], chunk.text)
            _append(f["texts"], np.asarray(chunk.texts, dtype=object))
            _append(f["official_split"], np.asarray(chunk.official_split, dtype=object))
            _append(f["skipped"], np.asarray(chunk.skipped, dtype=object))
            for key in ("words", "regions"):
                rag: Ragged | None = getattr(chunk, key)
                if rag is None:
                    continue
                g = f[key]
                base = int(g["offsets"][-1])
                _append(g["embeddings"], rag.embeddings)
                _append(g["offsets"], base + rag.offsets[1:])
                if key == "words":
                    _append(g["tokens"], np.asarray(rag.names, dtype=object))
                else:
                    _append(g["boxes"], rag.boxes)
        _write_array(f, "label_names", np.asarray(list(label_names), dtype=str))
        n = int(f["ids"].shape[0])
        for name in ("labels", "image", "text", "texts", "official_split"):
            _expect(f[name].shape[0] == n, str(self.partial), name, f"({n}, ...)", f[name].shape)
        full = base_attrs(image_dim=lay["image_dim"], text_dim=lay["text_dim"], **self.counters)
        full.update(attrs)
        for k, v in full.items():
            f.attrs[k] = json.dumps(v) if isinstance(v, dict | list | tuple) else v

    def close(self) -> None:
        """Stop without finishing: the partial directory stays for a resume; the lock goes."""
        self._lock.release()


def _chunk_index(name: str) -> int | None:
    """``k`` for a committed chunk's file name (``chunk-000007.h5``: 7), else None."""
    stem = name.removeprefix("chunk-").removesuffix(".h5")
    return int(stem) if stem.isdigit() and name == _CHUNK.format(int(stem)) else None


def _resizable(group: h5py.Group, name: str, row: tuple[int, ...], dtype: Any) -> h5py.Dataset:
    row_bytes = 64 if dtype is _STR else np.dtype(dtype).itemsize * int(np.prod(row or (1,)))
    rows = max(1, (1 << 20) // row_bytes)  # ~1 MiB chunks
    extra: dict[str, Any] = {"compression": "gzip"}
    if dtype is not _STR:
        extra.update(compression_opts=4, shuffle=True)
    return group.create_dataset(
        name,
        shape=(0, *row),
        maxshape=(None, *row),
        dtype=dtype,
        chunks=(rows, *row),
        **extra,
    )


def _append(ds: h5py.Dataset, data: np.ndarray) -> None:
    if len(data) == 0:
        return
    start = ds.shape[0]
    ds.resize((start + len(data), *ds.shape[1:]))
    ds[start:] = data
