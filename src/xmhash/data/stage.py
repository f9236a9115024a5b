"""The dataset stage's entry points: download one dataset's files, prepare it.

``download_dataset`` fetches every official file of a source into
``resources/{dataset}/downloads/`` (local archive directories first, then mirrors, then
the official URLs; see :func:`xmhash.data.download.fetch`). ``prepare_dataset`` turns
them into ``resources/{dataset}/prepared/`` (or, for precomputed-feature sources, into a
feature file), atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from xmhash.data.datasets import get_source
from xmhash.data.datasets.base import require
from xmhash.data.download import fetch

log = logging.getLogger(__name__)


def download_dataset(
    source: str,
    dest_dir: str | os.PathLike,
    options: dict[str, Any],
    *,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
) -> list[Path]:
    """Fetch the source's official files into ``dest_dir``; return their paths."""
    src = get_source(source)
    local = options.get("local_dir")
    local_dirs = [Path(local).expanduser()] if local else []
    mirrors = list(options.get("mirrors") or [])
    paths = []
    for remote in src.files:
        paths.append(
            fetch(
                remote,
                dest_dir,
                mirrors=mirrors,
                local_dirs=local_dirs,
                official=options.get("official_urls", True),
                retries=retries,
                timeout=timeout,
                backoff=backoff,
            )
        )
    log.info("%s: %d files in %s", src.title, len(paths), dest_dir)
    return paths


def prepare_dataset(
    source: str, downloads: str | os.PathLike, out: str | os.PathLike, options: dict[str, Any]
) -> dict[str, Any]:
    """Prepare the source from the files in ``downloads`` into ``out``."""
    src = get_source(source)
    downloads = Path(downloads)
    files = {name: downloads / name for name in src.file_names()}
    for path in files.values():
        require(path, f"official file of {src.title}; run the download rule first")
    opts = {**src.options, **{k: v for k, v in options.items() if v is not None}}
    counts = src.prepare(files, Path(out), opts)
    log.info("%s prepared into %s: %s", src.title, out, counts)
    return counts
