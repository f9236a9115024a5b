"""The dataset stage's entry points: download one dataset's files, prepare it.

``download_dataset`` fetches every official file of a source into
``resources/{dataset}/downloads/`` (local archive directories first, then mirrors, then
the official URLs; see :func:`xmhash.data.download.fetch`). ``prepare_dataset`` turns
them into ``resources/{dataset}/prepared/`` (or, for precomputed-feature sources, into a
feature file), atomically.

Following an error's advice must lead to a working run. A downloaded archive that fails
to unpack is moved aside (``<name>.corrupt``) and the download manifest removed, so that
running the workflow again fetches the file anew; a file missing from the downloads
likewise removes the manifest, so the download rule reruns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from xmhash.data.datasets import DatasetError, get_source
from xmhash.data.datasets.base import setting
from xmhash.data.download import ArchiveError, fetch, quarantine
from xmhash.io import write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"  # written last: the download rule's output


def download_dataset(
    source: str,
    dest_dir: str | os.PathLike,
    options: dict[str, Any],
    *,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 2.0,
    dataset: str | None = None,
) -> list[Path]:
    """Fetch the source's official files into ``dest_dir``; return their paths.
    ``dataset`` (the config key) names the settings in error messages."""
    src = get_source(source)
    local = options.get("local_dir")
    local_dirs = [Path(local).expanduser()] if local else []
    mirrors = list(options.get("mirrors") or [])
    paths = []
    for remote in src.remotes(options):
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
                local_dir_key=setting({"name": dataset, **options}, "local_dir"),
            )
        )
    log.info("%s: %d files in %s", src.title, len(paths), dest_dir)
    write_json(
        Path(dest_dir) / MANIFEST,
        {"source": source, "files": {p.name: {"bytes": p.stat().st_size} for p in paths}},
    )
    return paths


def _files(src, downloads: Path, options: dict[str, Any]) -> dict[str, Path]:
    files = {r.name: downloads / r.name for r in src.remotes(options)}
    missing = [p for p in files.values() if not p.exists()]
    if missing:
        (downloads / MANIFEST).unlink(missing_ok=True)
        raise DatasetError(
            f"{missing[0]}: missing (official file of {src.title}); run the workflow again: "
            f"the download rule fetches it anew"
        )
    return files


def _unpacking(downloads: Path, run, *args):
    """``run(*args)``; an archive of ``downloads`` that fails to unpack is moved aside and
    the download manifest removed, so the next run fetches it again."""
    try:
        return run(*args)
    except ArchiveError as e:
        bad = e.archive
        if not e.damaged or bad.parent.resolve() != downloads.resolve() or not bad.exists():
            raise
        aside = quarantine(bad)
        (downloads / MANIFEST).unlink(missing_ok=True)
        raise DatasetError(
            f"{e}. It was moved aside to {aside}; run the workflow again to fetch it anew "
            f"(if it is copied from datasets.<name>.local_dir, replace the copy there first)"
        ) from None


def _options(src, options: dict[str, Any]) -> dict[str, Any]:
    return {**src.options, **{k: v for k, v in options.items() if v is not None}}


def prepare_dataset(
    source: str, downloads: str | os.PathLike, out: str | os.PathLike, options: dict[str, Any]
) -> dict[str, Any]:
    """Prepare the source from the files in ``downloads`` into the directory ``out``."""
    src = get_source(source)
    if src.prepare is None:
        raise DatasetError(
            f"dataset source {source!r} ships precomputed features only; use "
            f"encoder: {src.encoder} (its features are imported, not encoded)"
        )
    downloads, options = Path(downloads), _options(src, options)
    counts = _unpacking(downloads, src.prepare, _files(src, downloads, options), Path(out), options)
    log.info("%s prepared into %s: %s", src.title, out, counts)
    return counts


def import_features(
    source: str, downloads: str | os.PathLike, out: str | os.PathLike, options: dict[str, Any]
) -> dict[str, Any]:
    """Write the features that ship with the source to the feature file ``out``."""
    src = get_source(source)
    if src.import_features is None:
        raise DatasetError(f"dataset source {source!r} ships no features to import")
    downloads, options = Path(downloads), _options(src, options)
    counts = _unpacking(
        downloads, src.import_features, _files(src, downloads, options), Path(out), options
    )
    log.info("%s features imported into %s: %s", src.title, out, counts)
    return counts
