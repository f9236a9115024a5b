"""PKU XMedia: a registration-only set (``manual`` source).

Obtained by hand (registration at the PKU MIPL page); the user points ``datasets.<name>.root`` at the files
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
    return prepare_folders("xmedia", out, options)


SOURCE = Source(
    name="xmedia",
    title="PKU XMedia",
    files=(),
    prepare=prepare,
    size="20 classes, 5,000 image-text pairs (of 5 media)",
    licence="research use after registration; redistribution not allowed",
    user_supplies="the dataset files (registration at the PKU MIPL page), arranged as root/images/<class>/, root/texts/<class>/",
    options={"pairing": "instance", "check_images": True},
)
