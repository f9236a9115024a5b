"""The dataset registry: one module per dataset source, one line each below.

``datasets.<name>.source`` in config.yaml selects an entry (``demo`` is built in and not
listed). See :mod:`xmhash.data.datasets.base` for what a module provides.
"""

from xmhash.data.datasets import mirflickr25k
from xmhash.data.datasets.base import DatasetError, Source

SOURCES: dict[str, Source] = {m.SOURCE.name: m.SOURCE for m in (mirflickr25k,)}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset source {name!r}; registered: {sorted(SOURCES)} "
            f"(src/xmhash/data/datasets/__init__.py)"
        ) from None


__all__ = ["SOURCES", "DatasetError", "Source", "get_source"]
