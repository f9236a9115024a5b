"""Downloads and archives: verified fetches and safe extraction.

* :func:`fetch` gets one :class:`Remote` file into a directory: first from the local
  archive directories (offline use), then from each mirror, then from the official URLs.
  HTTP downloads resume a partial file with a ``Range`` request (a server that ignores
  ``Range`` restarts from zero), retry with exponential backoff, time out, and show a
  progress bar. The file appears under its final name only once it is complete and its
  sha256 matches (when the sha256 is known; otherwise an archive must read to its end,
  and the computed sha256 is logged and written to ``<name>.sha256`` so it can be
  pinned). A file that fails these checks is never copied or pinned: a bad download is
  moved aside to ``<name>.corrupt``, a bad copy in a local archive directory is named in
  the error so it can be replaced.
* :func:`extract` unpacks a zip or tar archive into a directory atomically. A member
  that would land outside the target (absolute path, ``..``) or is a link or a device is
  refused before anything is written; a truncated or corrupt archive is reported as such.
* :func:`quarantine` moves a file that failed later (at extraction) aside and drops its
  pin, so that the next run fetches it again.

Every error names the file and what is wrong (:class:`DownloadError`,
:class:`ChecksumError`, :class:`ArchiveError`).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from xmhash.io import atomic_path
from xmhash.log import progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "xmhash-dataset-fetcher"


class DownloadError(RuntimeError):
    """A file could not be obtained from any source; the message lists what was tried."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the known one."""


class ArchiveError(ValueError):
    """An archive is truncated, corrupt, or has an unsafe member."""

    def __init__(self, message: str, archive: str | os.PathLike, *, damaged: bool = True):
        super().__init__(message)
        self.archive = Path(archive)
        self.damaged = damaged  # truncated or corrupt (another copy may be fine)


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class Remote:
    """One official file: its name on disk, where to get it, and its sha256 if known.

    ``urls`` empty means the file is registration-only (``manual``): it can only come
    from a local archive directory the user fills by hand.
    """

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    note: str = ""

    @property
    def manual(self) -> bool:
        return not self.urls


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, remote: Remote) -> None:
    """Raise :class:`ChecksumError` if ``path`` does not match ``remote``'s size or sha256."""
    if remote.size is not None and path.stat().st_size != remote.size:
        raise ChecksumError(
            f"{path}: size {path.stat().st_size} bytes, expected {remote.size} "
            f"(official file {remote.name})"
        )
    if remote.sha256 is not None:
        got = sha256_file(path)
        if got != remote.sha256.lower():
            raise ChecksumError(
                f"{path}: sha256 {got}, expected {remote.sha256} (official file "
                f"{remote.name}); the file is corrupt or not the official one"
            )


def check_complete(path: Path, remote: Remote) -> None:
    """Verify ``path`` against ``remote``; without a known sha256, an archive must also
    read to its end (a truncated copy would otherwise be pinned as the official file)."""
    verify(path, remote)
    if remote.sha256 is None and remote.name.lower().endswith(ARCHIVE_SUFFIXES):
        check_archive(path)


def quarantine(path: str | os.PathLike) -> Path:
    """Move a bad download aside to ``<name>.corrupt`` (replacing an older one) and drop
    the sha256 pin written for it; return where it went."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt")
    os.replace(path, aside)
    (path.parent / f"{path.name}.sha256").unlink(missing_ok=True)
    log.warning("%s: moved aside to %s", path, aside)
    return aside


def _record_unknown(path: Path, remote: Remote) -> None:
    if remote.sha256 is None:
        got = sha256_file(path)
        log.warning(
            "%s: no known sha256 for %s; computed %s (pin it in the registry)",
            path,
            remote.name,
            got,
        )
        (path.parent / f"{remote.name}.sha256").write_text(f"{got}  {remote.name}\n")


def candidate_urls(
    remote: Remote, mirrors: Sequence[str] = (), *, official: bool = True
) -> list[str]:
    """Mirrors first (``<mirror>/<name>``), then the official URLs (unless ``official``
    is false: mirrors and local archives only)."""
    return [f"{m.rstrip('/')}/{remote.name}" for m in mirrors] + list(
        remote.urls if official else ()
    )


def fetch(
    remote: Remote,
    dest_dir: str | os.PathLike,
    *,
    mirrors: Sequence[str] = (),
    local_dirs: Iterable[str | os.PathLike] = (),
    official: bool = True,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 1.0,
    local_dir_key: str = "datasets.<name>.local_dir",
) -> Path:
    """Make ``dest_dir/remote.name`` exist, complete and verified; return its path.

    A verified file already in place is kept. ``official=False`` skips the official URLs. Local archive directories are tried first
    (the file is copied, then verified), then each URL of :func:`candidate_urls` with up
    to ``retries`` resumed retries. A checksum mismatch deletes the download and moves on
    to the next source; if every source fails, :class:`DownloadError` (or
    :class:`ChecksumError` when every copy found was wrong) lists what was tried.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.name
    if final.exists():
        try:
            check_complete(final, remote)
            return final
        except (ChecksumError, ArchiveError) as e:
            log.warning("%s; fetching it again", e)
            quarantine(final)

    tried: list[str] = []
    checksum_failures = 0
    for directory in local_dirs:
        src = Path(directory) / remote.name
        if not src.exists():
            tried.append(f"{src}: not found")
            continue
        try:
            check_complete(src, remote)
        except (ChecksumError, ArchiveError) as e:
            checksum_failures += 1
            tried.append(f"{e}; replace it with a complete copy of {remote.name}")
            continue
        with atomic_path(final) as tmp:
            shutil.copyfile(src, tmp)
        _record_unknown(final, remote)
        log.info("%s: copied from the local archive %s", final, src)
        return final

    if remote.manual and not tried:
        tried.append("no local archive directory configured")
    for url in candidate_urls(remote, mirrors, official=official):
        part = dest_dir / f".{remote.name}.download"
        try:
            _download(url, part, retries=retries, timeout=timeout, backoff=backoff)
            check_complete(part, remote)
        except (ChecksumError, ArchiveError) as e:
            checksum_failures += 1
            part.unlink(missing_ok=True)
            tried.append(f"{url}: {str(e).split(': ', 1)[1]}")
            log.warning("%s: %s", url, e)
            continue
        except DownloadError as e:
            tried.append(f"{url}: {e}")
            log.warning("%s", e)
            continue
        os.replace(part, final)
        _record_unknown(final, remote)
        return final

    how = (
        f"it is registration-only: obtain {remote.name} by hand ({remote.note or 'see the README'}) "
        f"and put it in a local archive directory ({local_dir_key})"
        if remote.manual
        else f"check the network, the mirrors, or set {local_dir_key}"
    )
    cls = ChecksumError if checksum_failures and checksum_failures == len(tried) else DownloadError
    raise cls(f"{final}: could not obtain {remote.name}; {how}. Tried:\n  " + "\n  ".join(tried))


def _download(url: str, part: Path, *, retries: int, timeout: float, backoff: float) -> None:
    """Download ``url`` into ``part``, resuming what is already there."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.info("%s: retry %d/%d in %.1fs after %s", url, attempt, retries, delay, last)
            time.sleep(delay)
        try:
            if _download_once(url, part, timeout=timeout):
                return
            last = DownloadError("connection closed before the end of the file")
        except urllib.error.HTTPError as e:
            if e.code == 416:  # the partial file is already as long as the resource
                part.unlink(missing_ok=True)
                last = e
                continue
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
            last = e
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as e:
            last = e
    raise DownloadError(f"{url}: failed after {retries + 1} attempts; last error: {last!r}")


def _download_once(url: str, part: Path, *, timeout: float) -> bool:
    """One request; True when the body was received in full."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        start, total = 0, None
        if resp.status == 206:
            crange = resp.headers.get("Content-Range", "")  # bytes a-b/total
            try:
                span, _, size = crange.split(" ", 1)[1].partition("/")
                start = int(span.split("-")[0])
                total = int(size) if size != "*" else None
            except (IndexError, ValueError):
                raise DownloadError(f"{url}: bad Content-Range {crange!r}") from None
            if start != have:
                raise DownloadError(f"{url}: asked for bytes {have}-, server sent {crange!r}")
        else:  # 200: the server ignored Range (or there was nothing to resume)
            if have:
                log.info("%s: server ignored the Range request; restarting from 0", url)
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
        mode = "ab" if start else "wb"
        received = start
        with open(part, mode) as fh:
            blocks = _blocks(resp)
            n_blocks = None if total is None else -(-(total - start) // CHUNK)
            for block in progress(
                blocks,
                desc=part.name.strip(".").removesuffix(".download"),
                total=n_blocks,
                unit="MiB",
            ):
                fh.write(block)
                received += len(block)
    return total is None or received >= total


def _blocks(resp) -> Iterator[bytes]:
    """CHUNK-sized blocks (the last may be shorter) until the connection ends. A
    connection closed early yields what arrived instead of raising, so the partial file
    keeps every byte received and the retry resumes after it."""
    while True:
        try:
            block = resp.read(CHUNK)
        except http.client.IncompleteRead as e:
            if e.partial:
                yield bytes(e.partial)
            return
        if not block:
            return
        yield block


# ---------------------------------------------------------------- archives


def _unsafe_name(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in p.parts:
        return "path escapes the target directory"
    return None


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        why = _unsafe_name(info.filename)
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            why = "symbolic link"
        if why:
            raise ArchiveError(
                f"{archive}: member {info.filename!r} refused ({why}); nothing was extracted",
                archive,
                damaged=False,
            )


def _check_tar(tf: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tf.getmembers()  # reads the whole archive: detects truncation early
    for m in members:
        why = _unsafe_name(m.name)
        if why is None and (m.issym() or m.islnk()):
            why = "link"
        elif why is None and not (m.isfile() or m.isdir()):
            why = "device or special file"
        if why:
            raise ArchiveError(
                f"{archive}: member {m.name!r} refused ({why}); nothing was extracted",
                archive,
                damaged=False,
            )
    return members


def check_archive(archive: str | os.PathLike) -> None:
    """Read a zip or tar archive to its end without writing anything; raise
    :class:`ArchiveError` if it is truncated, corrupt or not an archive."""
    archive = Path(archive)
    why = None
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()  # reads every member and checks its CRC
            why = None if bad is None else f"member {bad!r} fails its CRC check"
        elif _is_tar(archive):
            with open(archive, "rb") as fh:
                compressed = fh.read(6).startswith(_COMPRESSED_MAGIC)
            with tarfile.open(archive) as tf:
                members = tf.getmembers()  # a compressed stream is read to its end
            size = archive.stat().st_size
            cut = [m.name for m in members if m.offset_data + m.size > size]
            why = f"member {cut[0]!r} is cut short" if cut and not compressed else None
        else:
            why = "not a zip or tar archive, or cut before its index"
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError | PermissionError):
            raise
        why = str(e)
    if why:
        raise ArchiveError(
            f"{archive}: truncated or corrupt archive ({why}; {archive.stat().st_size} bytes)",
            archive,
        )


_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into ``target``, atomically.

    ``target`` appears only when every member was checked and written; an existing
    ``target`` is replaced. Returns ``target``.
    """
    archive, target = Path(archive), Path(target)
    if not archive.exists():
        raise FileNotFoundError(f"archive not found: {archive}")
    try:
        with atomic_path(target, directory=True) as tmp:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(zf, archive)
                    for info in progress(
                        zf.infolist(), desc=f"extract {archive.name}", unit="file"
                    ):
                        zf.extract(info, tmp)
            elif _is_tar(archive):
                with tarfile.open(archive) as tf:
                    members = _check_tar(tf, archive)
                    for m in progress(members, desc=f"extract {archive.name}", unit="file"):
                        tf.extract(m, tmp, set_attrs=False, filter="data")
            else:
                raise ArchiveError(
                    f"{archive}: not a zip or tar archive, or truncated before "
                    f"its index (size {archive.stat().st_size} bytes)",
                    archive,
                )
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError | PermissionError):
            raise
        raise ArchiveError(f"{archive}: truncated or corrupt archive ({e})", archive) from None
    return target


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        return False
