"""Atomic outputs: a crash never leaves a half-written file or directory behind."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` when the block succeeds.

    The temporary (:func:`scratch_path`) is named ``.{name}.{random}.partial``, so that it
    is never mistaken for a finished output. On an exception it is removed and the
    exception propagates; an existing ``path`` is left untouched until the final rename.
    A process killed mid-write leaves it behind: the next write of ``path``, or the next
    start of its job (:func:`sweep_stale`), removes it.
    """
    path = Path(path)
    with scratch_path(path, suffix=".partial", directory=directory) as tmp:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        if tmp.exists():  # mkstemp/mkdtemp make 0600/0700: give the usual umask modes
            tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~_umask())
        os.replace(tmp, path)


# A temporary ``T`` of a path is held, while in use, by an exclusive lock on its sidecar
# ``T.lock``, taken before ``T`` is made and dropped after ``T`` is gone: a temporary whose
# sidecar is missing or unlocked belongs to a process that died (the lock goes with it),
# on this host or, on a shared file system, any other.
_TEMPORARY = r"[a-z0-9_]{8}\.(?:partial|work)"  # tempfile's random part, then the kind


@contextmanager
def scratch_path(
    path: str | os.PathLike, *, suffix: str = ".work", directory: bool = False
) -> Iterator[Path]:
    """Yield a new, held temporary file or directory ``.{name}.{random}{suffix}`` beside
    ``path`` (same file system, so moves are renames); remove it afterwards, whatever
    happens. Stale temporaries of ``path`` (their holder dead) are swept first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp, fd = _claim(path, suffix, directory)
    try:
        yield tmp
    finally:
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        finally:
            Path(f"{tmp}.lock").unlink(missing_ok=True)  # still held: nobody takes it now
            os.close(fd)


def _claim(path: Path, suffix: str, directory: bool) -> tuple[Path, int]:
    while True:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f"{suffix}.lock", dir=path.parent
        )
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a sweeper that found it first
        try:
            ours = os.fstat(fd).st_ino == os.stat(name).st_ino
        except FileNotFoundError:  # that sweeper removed it: take another name
            ours = False
        tmp = Path(name.removesuffix(".lock"))
        if ours:
            try:
                if directory:
                    tmp.mkdir(mode=0o700)
                else:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return tmp, fd
            except FileExistsError:
                Path(name).unlink(missing_ok=True)
        os.close(fd)


def sweep_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` (:func:`scratch_path`, :func:`atomic_path`) whose
    holder is dead, and only those; return what was removed. A job calls it for its
    outputs when it starts, so a killed job's debris goes when it runs again, while a
    live job's temporaries (an orphan of a killed workflow still writing) stay."""
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + _TEMPORARY)
    temporaries = {
        n.removesuffix(".lock") for n in names if pattern.fullmatch(n.removesuffix(".lock"))
    }
    removed = []
    for name in sorted(temporaries):
        tmp, lock = path.parent / name, path.parent / f"{name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # made before these locks, or its holder was removing it
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # held: a live process is writing it
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink(missing_ok=True)
            else:
                tmp = lock
            lock.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
        log.info("removed %s, left by a killed process", tmp)
        removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays without importing numpy here
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
