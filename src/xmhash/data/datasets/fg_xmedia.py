"""PKU FG-XMedia: a registration-only set (``manual`` source).

Obtained by hand (registration at the PKU MIPL page); the user points ``datasets.<name>.root`` at the files
arranged in class folders (see :mod:`xmhash.data.datasets.folders`). Pairing:
``class``. Its precomputed feature ``.mat`` (the RSHNL/MRL lineage) is imported by the
``rshnl_mat`` source instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmhash.data.datasets.base import Source
from xmhash.data.datasets.folders import prepare_folders


def prepare(files: dict[str, Path], out: Path, options: dict[str, Any]) -> dict[str, Any]:
    return prepare_folders("fg_xmedia", out, options)


SOURCE = Source(
    name="fg_xmedia",
    title="PKU FG-XMedia",
    files=(),
    prepare=prepare,
    size="200 fine-grained bird classes (CUB-based); images and texts not instance-paired",
    licence="research use after registration; redistribution not allowed",
    user_supplies="the dataset files (registration at the PKU MIPL page), arranged as root/images/<class>/, root/texts/<class>/",
    options={"pairing": "class", "check_images": True},
)
