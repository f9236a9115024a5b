"""The dataset registry: one module per dataset source, one line each below.

``datasets.<name>.source`` in config.yaml selects an entry (``demo`` is built in and not
listed). See :mod:`xmhash.data.datasets.base` for what a module provides. Only this
module maps source names to modules; no other code branches on a dataset's name.
"""

from __future__ import annotations

from xmhash.data.datasets.base import DatasetError, Source
from xmhash.data.datasets.coco2014 import SOURCE as COCO2014
from xmhash.data.datasets.dcmh_mat import SOURCE as DCMH_MAT
from xmhash.data.datasets.fg_xmedia import SOURCE as FG_XMEDIA
from xmhash.data.datasets.iaprtc12 import SOURCE as IAPRTC12
from xmhash.data.datasets.inria_websearch import SOURCE as INRIA_WEBSEARCH
from xmhash.data.datasets.manifest import SOURCE as MANIFEST
from xmhash.data.datasets.mirflickr25k import SOURCE as MIRFLICKR25K
from xmhash.data.datasets.nuswide import SOURCE as NUSWIDE
from xmhash.data.datasets.rshnl_mat import SOURCE as RSHNL_MAT
from xmhash.data.datasets.wikipedia import SOURCE as WIKIPEDIA
from xmhash.data.datasets.xmedia import SOURCE as XMEDIA
from xmhash.data.datasets.xmedianet import SOURCE as XMEDIANET

SOURCES: dict[str, Source] = {
    src.name: src
    for src in (
        MIRFLICKR25K,
        NUSWIDE,
        COCO2014,
        IAPRTC12,
        WIKIPEDIA,
        XMEDIA,
        XMEDIANET,
        FG_XMEDIA,
        INRIA_WEBSEARCH,
        DCMH_MAT,
        RSHNL_MAT,
        MANIFEST,
    )
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset source {name!r}; registered: {sorted(SOURCES)} "
            f"(src/xmhash/data/datasets/__init__.py)"
        ) from None


__all__ = ["SOURCES", "DatasetError", "Source", "get_source"]
