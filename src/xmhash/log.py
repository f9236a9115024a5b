"""Logging and progress bars.

Modules use ``logging.getLogger(__name__)``; only entry points (the Snakemake script
adapters, the CLI, benchmarks) call :func:`setup_logging`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Send log records (and uncaught tracebacks, via stderr) to ``log_path`` or stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=level, format=_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """A tqdm progress bar (rate and ETA) on stderr; plain iteration when tqdm is off.

    Set ``XMHASH_PROGRESS=0`` to silence bars (the tests do). Bars go to stderr, which
    the Snakemake script adapters redirect to the rule's log file.
    """
    if os.environ.get("XMHASH_PROGRESS", "1") == "0":
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        mininterval=1.0,
        dynamic_ncols=False,
    )
