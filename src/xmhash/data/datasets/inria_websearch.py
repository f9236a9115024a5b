"""INRIA-Websearch: a registration-only set (``manual`` source).

Obtained by hand (request form at INRIA (LEAR)); the user points ``datasets.<name>.root`` at the files
arranged in class folders (see :mod:`xmhash.data.datasets.folders`). Pairing:
``instance``. Its precomputed feature ``.mat`` (the RSHNL/MRL lineage) is imported by the
``rshnl_mat`` source instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import Source
from xmhash.data.datasets.folders import prepare_folders


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    return prepare_folders("inria_websearch", out, options)


SOURCE = Source(
    name="inria_websearch",
    title="INRIA-Websearch",
    files=(),
    prepare=prepare,
    size="71,478 image-text pairs, 353 queries (14,698 pairs in the RSHNL/MRL subset)",
    licence="research use after registration; redistribution not allowed",
    user_supplies="the dataset files (request form at INRIA (LEAR)), arranged as root/images/<class>/, root/texts/<class>/",
    options={"pairing": "instance", "check_images": True},
)
