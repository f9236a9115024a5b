"""What every dataset module provides, and the checks they share.

A dataset module defines one :class:`Source`: the official files (:class:`Remote`, with
URLs and sha256 where known; none for registration-only sets), and ``prepare``, which
turns the downloaded files into the prepared layout (:mod:`xmhash.data.prepared`) or,
for precomputed-feature sets, into a feature file (:mod:`xmhash.features.store`).

``prepare(files, out, options)`` (and ``import_features``, same signature): ``files`` maps each official file name to its verified
local path, ``out`` is the directory (or feature file) to write atomically, ``options``
is the dataset's config block (``datasets.<name>``). It returns the counts it recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmhash.data.download import Remote, extract
from xmhash.data.prepared import PreparedError
from xmhash.io import scratch_path

Prepare = Callable[[dict[str, Path], Path, dict[str, Any]], dict[str, Any]]


class DatasetError(PreparedError):
    """Bad or missing input to a dataset's preparation; the message names the file."""


@dataclass(frozen=True)
class Source:
    """One dataset source. ``prepare`` writes the prepared layout (for the feature
    stage's encoders); ``import_features`` writes a feature file directly from features
    that ship with the dataset, under the encoder key ``encoder``. A source has one or
    both."""

    name: str  # the config value datasets.<name>.source
    title: str
    files: tuple[Remote, ...]
    prepare: Prepare | None = None
    import_features: Prepare | None = None
    encoder: str | None = None  # encoder key of the imported features
    size: str = ""  # what the literature uses (README table)
    licence: str = ""
    user_supplies: str = "nothing"
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    # the option naming a folder that holds the official files already unpacked: when it
    # is set, nothing is downloaded and the source reads that folder
    folder: str | None = None

    def file_names(self) -> list[str]:
        return [f.name for f in self.files]

    def remotes(self, options: dict[str, Any]) -> tuple[Remote, ...]:
        """The files to download under ``options`` (none when its folder is set)."""
        return () if self.folder and options.get(self.folder) else self.files


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: missing ({what})")
    return path


def read_lines(path: Path) -> list[str]:
    require(path, "expected in the official layout")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\r\n") for line in fh]


def check_image(path: Path) -> None:
    """Raise :class:`DatasetError` if ``path`` is missing or not a decodable image."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(f"{path}: image file missing")
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:  # verify() does not decode pixel data
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: corrupt image ({e})") from None


def check_images(root: Path, relpaths: list[str], enabled: bool = True) -> None:
    from xmhash.log import progress

    if not enabled:
        return
    for rel in progress(relpaths, desc="check images", unit="img"):
        check_image(root / rel)


@contextmanager
def workdir(out: Path) -> Iterator[Path]:
    """A scratch directory beside ``out`` (same file system, so moves are renames),
    removed afterwards whatever happens (after a kill, when the job starts again). A
    :class:`DatasetError` raised inside names the archive a file was unpacked from, not
    the scratch directory, which is gone by the time the user reads it."""
    with scratch_path(out, suffix=".work", directory=True) as tmp:
        try:
            yield tmp
        except DatasetError as e:
            raise DatasetError(_user_paths(str(e), tmp)) from None


_FROM = ".{}.archive"  # beside an unpacked folder: the path of its archive


def _user_paths(message: str, work: Path) -> str:
    """``message`` with the paths into ``work`` named by the archive they came from."""
    for marker in sorted(work.glob(_FROM.format("*"))):
        folder = work / marker.name.removeprefix(".").removesuffix(".archive")
        archive = marker.read_text()
        message = message.replace(f"{folder}/", f"{archive}: its ").replace(str(folder), archive)
    return message.replace(f"{work}/", "the unpacked archives' ")


def unpack(archive: Path, into: Path) -> Path:
    """Extract ``archive`` into a fresh subdirectory of ``into`` named after it (and
    record where it came from, for the messages of :func:`workdir`)."""
    target = extract(archive, into / archive.name.split(".")[0])
    (into / _FROM.format(target.name)).write_text(str(archive))
    return target


def find_dir(root: Path, marker: str, what: str, archive: Path | None = None) -> Path:
    """The directory under ``root`` (root itself first) that contains ``marker``."""
    if (root / marker).exists():
        return root
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if (Path(dirpath) / marker).exists():
            return Path(dirpath)
    raise DatasetError(
        f"{archive or root}: no {marker!r} found ({what}); is this the official archive?"
    )


def option(options: dict[str, Any], key: str, default: Any = None) -> Any:
    value = options.get(key, default)
    return default if value is None else value


def setting(options: dict[str, Any], key: str) -> str:
    """The config key of a dataset option, as the user writes it: ``datasets.mine.key``."""
    return f"datasets.{options.get('name') or '<name>'}.{key}"


def user_dir(options: dict[str, Any], key: str, dataset: str) -> Path:
    value = options.get(key)
    if not value:
        raise DatasetError(
            f"config.yaml: {setting(options, key)} is not set; point it at the folder that "
            f"holds the {dataset} images"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path}: image folder ({setting(options, key)}) does not exist")
    return path.resolve()
