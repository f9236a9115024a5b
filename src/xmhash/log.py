"""Logging and progress bars.

Modules use ``logging.getLogger(__name__)``; only entry points (the Snakemake script
adapters, the CLI, benchmarks) call :func:`setup_logging`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FORMATTER = logging.Formatter(_FORMAT)
LOG_INTERVAL = 30.0  # seconds between progress lines when stderr is a file


def setup_logging(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Send log records (and uncaught tracebacks, via stderr) to ``log_path`` or stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=level, format=_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    initial: int = 0,
    size: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Progress (count, rate, ETA) on stderr: a tqdm bar on a terminal; in a log file
    (the Snakemake script adapters redirect stderr to the rule's log), whole lines in the
    log records' format, one every ``LOG_INTERVAL`` seconds and one at the end, so that
    ``\\r``-redrawn bars never share a line with log records.

    ``size(element)`` counts each element as that many units (e.g. a batch as its items,
    so the bar shows items/s); ``total`` and ``initial`` are then in those units too
    (``initial``: already done, e.g. on resume). Set ``XMHASH_PROGRESS=0`` to silence
    progress (the tests do).
    """
    if os.environ.get("XMHASH_PROGRESS", "1") == "0":
        yield from iterable
        return
    if not getattr(sys.stderr, "isatty", lambda: False)():
        yield from _progress_lines(iterable, desc, total, unit, initial, size)
        return
    from tqdm.auto import tqdm

    bar = tqdm(
        iterable if size is None else None,
        desc=desc,
        total=total,
        unit=unit,
        initial=initial,
        file=sys.stderr,
        mininterval=1.0,
        dynamic_ncols=False,
    )
    if size is None:
        yield from bar
        return
    try:
        for element in iterable:
            yield element
            bar.update(size(element))
    finally:
        bar.close()


def _progress_lines(
    iterable: Iterable[T],
    desc: str,
    total: int | None,
    unit: str,
    initial: int,
    size: Callable[[T], int] | None,
) -> Iterator[T]:
    if total is None and hasattr(iterable, "__len__"):
        total = initial + len(iterable)  # type: ignore[arg-type]
    t0 = last = time.monotonic()
    done = initial

    def line() -> None:
        elapsed = time.monotonic() - t0
        rate = (done - initial) / elapsed if elapsed > 0 else float("nan")
        of = f"/{total} {unit}" if total else f" {unit}"
        text = f"{desc}: {done}{of}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", {rate:.3g} {unit}/s, {_clock(elapsed)} elapsed"
        if total and rate > 0 and done < total:
            text += f", ETA {_clock((total - done) / rate)}"
        record = logging.LogRecord("xmhash.progress", logging.INFO, __file__, 0, text, None, None)
        sys.stderr.write(_FORMATTER.format(record) + "\n")
        sys.stderr.flush()

    try:
        for element in iterable:
            yield element
            done += size(element) if size is not None else 1
            if time.monotonic() - last >= LOG_INTERVAL:
                line()
                last = time.monotonic()
    finally:
        line()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def wrote(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> None:
    """End a job's log with what it wrote: one ``wrote <path>, <path>`` record."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    logging.getLogger("xmhash").info("wrote %s", ", ".join(str(p) for p in paths))
