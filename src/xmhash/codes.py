"""The code file ``codes.h5``: the only module that knows its layout.

::

    /query/image     (nq, ceil(bits/8))  uint8   packed bits, big-endian (np.packbits)
    /query/text      (nq, ceil(bits/8))  uint8
    /query/ids       (nq,)  utf-8 str
    /query/index     (nq,)  int64        rows of the feature file
    /database/...    the same for the retrieval set

Root attributes: ``format_version``, ``xmhash_version``, ``dataset``, ``method``, ``bits``,
``seed``, ``features`` (the feature file's path as the producer named it, relative to the
workflow directory in a workflow run) and ``features_digest`` (the sha256 of that file's
bytes, :func:`xmhash.provenance.file_digest`: which feature file, by content, the codes
were exported from; files written before it was recorded lack it), plus any extra
string/number attributes given by the producer. A bit is 1 where the network output is
>= 0 (see :mod:`xmhash.bits`).

:func:`export_mat` writes the same codes as ±1 int8 matrices to a MATLAB ``.mat`` file
(keys ``B_query_image``, ``B_query_text``, ``B_database_image``, ``B_database_text``,
``query_ids``, ``database_ids``) for users of the classic MATLAB evaluation scripts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xmhash import __version__
from xmhash.bits import pack, unpack
from xmhash.io import atomic_path
from xmhash.provenance import file_digest

FORMAT_VERSION = 1
SETS = ("query", "database")
MODALITIES = ("image", "text")


class CodeFileError(ValueError):
    """A codes file that is missing, damaged or of another format; the message says what to do."""


@dataclass
class CodeSet:
    image: np.ndarray  # packed uint8
    text: np.ndarray
    ids: np.ndarray
    index: np.ndarray


@dataclass
class Codes:
    bits: int
    query: CodeSet
    database: CodeSet
    attrs: dict[str, Any] = field(default_factory=dict)

    def unpacked(self, which: str, modality: str) -> np.ndarray:
        return unpack(getattr(getattr(self, which), modality), self.bits)

    @property
    def features_digest(self) -> str | None:
        """The content digest of the feature file the codes came from (None in older files)."""
        return self.attrs.get("features_digest") or None


def features_attrs(features: str | os.PathLike) -> dict[str, str]:
    """The root attributes that name the feature file codes are exported from: its path
    as given and its content digest."""
    return {"features": str(features), "features_digest": file_digest(features)}


def make_codeset(
    image: np.ndarray, text: np.ndarray, ids: np.ndarray, index: np.ndarray
) -> CodeSet:
    """Build a code set from ±1 (or 0/1) code matrices."""
    return CodeSet(
        image=pack(image),
        text=pack(text),
        ids=np.asarray(ids).astype(str),
        index=np.asarray(index, np.int64),
    )


def save_codes(path: str | os.PathLike, codes: Codes) -> None:
    nbytes = (codes.bits + 7) // 8
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name in SETS:
            cs: CodeSet = getattr(codes, name)
            g = f.create_group(name)
            for mod in MODALITIES:
                arr = getattr(cs, mod)
                if arr.shape != (len(cs.ids), nbytes) or arr.dtype != np.uint8:
                    raise CodeFileError(
                        f"{name}/{mod}: shape {arr.shape} {arr.dtype}, expected "
                        f"({len(cs.ids)}, {nbytes}) uint8 for {codes.bits} bits"
                    )
                g.create_dataset(mod, data=arr, compression="gzip")
            g.create_dataset("ids", data=cs.ids.astype(object), dtype=h5py.string_dtype())
            g.create_dataset("index", data=cs.index)
        f.attrs.update(
            {
                "format_version": FORMAT_VERSION,
                "xmhash_version": __version__,
                "bits": codes.bits,
                **codes.attrs,
            }
        )


def load_codes(path: str | os.PathLike) -> Codes:
    path = Path(path)
    if not path.exists():
        raise CodeFileError(
            f"no exported codes at {path}: run the export stage first (snakemake {path})"
        )
    try:
        return _read_codes(path)
    except (OSError, KeyError) as e:  # h5py: truncated file, damaged chunk, missing part
        raise CodeFileError(
            f"{path}: not a readable codes file, truncated or damaged ({e}); export it "
            f"again: snakemake {path} --force"
        ) from None


def _read_codes(path: Path) -> Codes:
    with h5py.File(path, "r") as f:
        if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise CodeFileError(
                f"{path}: format_version {f.attrs.get('format_version')}, expected {FORMAT_VERSION}"
            )
        sets = {}
        for name in SETS:
            if name not in f:
                raise CodeFileError(f"{path}: missing /{name}")
            g = f[name]
            sets[name] = CodeSet(
                image=g["image"][()],
                text=g["text"][()],
                ids=g["ids"].asstr()[()],
                index=g["index"][()],
            )
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return Codes(
        bits=int(attrs["bits"]), query=sets["query"], database=sets["database"], attrs=attrs
    )


def export_mat(path: str | os.PathLike, codes: Codes) -> None:
    from scipy.io import savemat

    data: dict[str, Any] = {}
    for name in SETS:
        for mod in MODALITIES:
            data[f"B_{name}_{mod}"] = codes.unpacked(name, mod)
        data[f"{name}_ids"] = np.asarray(getattr(codes, name).ids, dtype=object)
    data["bits"] = codes.bits
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            savemat(fh, data, do_compression=True)
