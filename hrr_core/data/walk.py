"""Streaming directory walk, header-only image probing and chunked CSV output.

Everything here is built so that a benchmark of millions of files never sits in memory as
Python objects: :func:`iter_image_files` is a generator over an explicit stack of folders
(``os.scandir``, one open directory at a time), :func:`probe_image` reads an image's header
only (``PIL.Image.open`` without decoding pixels) and :class:`ChunkedCsvWriter` buffers at
most ``chunk_rows`` rows before handing them to ``csv.writer``.

Files whose name starts with ``.`` (macOS ``._x.jpg`` forks, editor droppings) and files
with non-image extensions are skipped silently; image files that are empty or unreadable
are reported by the caller as bad files, never raised.

:func:`expand_inputs` turns ``hrr-detect``'s command-line paths (files, folders, globs) into a
sorted file list over the same walker, reporting what it cannot follow instead of skipping it.
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from hrr_core import io as hrr_io  # noqa: F401  (sets PIL's decompression-bomb limit)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
INPUT_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")  # what hrr-detect's folder walks pick up (case-insensitive)


class BadFile(Exception):
    """An image file that cannot be used; ``reason`` says why (written to bad_files.csv)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class LabelledFolder:
    """A folder of images that share a label, as found by an adapter's discovery step.

    ``group`` is the benchmark's own split folder (``train``, ``val``, ``test``, ``train2014``
    ...), ``subset`` the object class / source dataset / generator folder, ``generator`` the
    canonical generator name ("real" for a real folder shared by every generator).
    ``rel`` is the folder path relative to the benchmark root, in POSIX form.
    """

    rel: str
    label: int
    generator: str
    group: str
    subset: str = ""


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str
    sha256: str


def is_image_name(name: str, exts: tuple[str, ...] = IMAGE_EXTENSIONS) -> bool:
    """True for a visible file name with an image extension (case-insensitive)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in exts


def iter_image_files(
    top: str | os.PathLike,
    exts: tuple[str, ...] = IMAGE_EXTENSIONS,
    *,
    sort: bool = False,
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[str]:
    """Yield the path of every image file under ``top`` (recursively, symlinks followed).

    Folder cycles through symlinks are visited once. With ``sort=False`` the order is the file
    system's and one folder's entries are streamed (memory stays flat for millions of files);
    ``sort=True`` lists each folder's files by name before its sub-folders, also sorted (a stable
    order for :func:`expand_inputs`). ``on_error(path, reason)`` hears about folders that cannot be
    listed and image-named entries that cannot be followed (broken links, link loops); without
    it they are skipped silently.
    """
    report = on_error or (lambda path, reason: None)
    stack = [os.fspath(top)]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        subfolders: list[str] = []
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                for entry in sorted(it, key=lambda e: e.name) if sort else it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir():
                            subfolders.append(entry.path)
                        elif not is_image_name(entry.name, exts):
                            continue
                        elif entry.is_file():
                            yield entry.path
                        elif entry.is_symlink():
                            report(entry.path, stat_failure(entry.path))
                    except OSError:  # is_dir()/is_file() raise on a symlink loop
                        report(entry.path, stat_failure(entry.path))
        except OSError as exc:
            report(folder, f"cannot list this folder ({exc.strerror or exc})")
            continue
        stack.extend(reversed(subfolders))


def subdirs(folder: str | os.PathLike) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder`` (for small discovery levels only:
    never call it on a folder holding the images themselves)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def find_leaf_dirs(
    top: str | os.PathLike, is_leaf: Callable[[str], bool], max_depth: int
) -> Iterator[tuple[tuple[str, ...], str]]:
    """Yield ``(parts, path)`` for every folder under ``top`` whose name satisfies ``is_leaf``,
    at most ``max_depth`` levels down; ``parts`` are the folder names from ``top`` to it.
    The search never lists a leaf's contents (where the images are)."""
    stack: list[tuple[tuple[str, ...], str]] = [((), os.fspath(top))]
    while stack:
        parts, folder = stack.pop()
        for name in subdirs(folder):
            path = os.path.join(folder, name)
            if is_leaf(name):
                yield parts + (name,), path
            elif len(parts) + 1 < max_depth:
                stack.append((parts + (name,), path))


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable UTF-8 text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def stat_failure(path: str) -> str:
    """Why ``path`` cannot be followed: missing, a broken link, a link loop, or another error."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if os.path.islink(path):
            return "broken symbolic link (its target does not exist)"
        if exc.errno == errno.ENOENT:
            return "no such file or folder"
        return f"cannot be opened ({exc.strerror or exc})"
    return "cannot be read"


def expand_inputs(inputs) -> tuple[list[str], list[tuple[str, str]]]:
    """Files, folders (recursive; image extensions case-insensitive: {exts}) and glob patterns
    -> (files in a stable order, without duplicates; failures as (path, reason)). Missing paths,
    symlink loops, unreadable or image-less folders are reported, never raised. Files named
    explicitly are kept whatever their extension; inside folders, other files are skipped."""
    files: list[str] = []
    failures: list[tuple[str, str]] = []

    def walk(folder: str) -> None:
        files.extend(
            iter_image_files(
                folder, INPUT_EXTENSIONS, sort=True, on_error=lambda path, reason: failures.append((path, reason))
            )
        )

    for raw in inputs:
        p = os.fspath(raw)
        if not os.path.lexists(p) and glob.has_magic(p):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                failures.append((p, "the pattern matched no file"))
            for m in matches:
                (walk(m) if os.path.isdir(m) else files.append(m))
        elif not os.path.exists(p):
            failures.append((p, stat_failure(p)))
        elif os.path.isdir(p):
            before, n_fail = len(files), len(failures)
            walk(p)
            if len(files) == before and len(failures) == n_fail:
                failures.append((p, f"folder holds no image files ({', '.join(INPUT_EXTENSIONS)})"))
        else:
            files.append(p)
    return _first(files, os.path.normpath), _first([(display_path(p), r) for p, r in failures], lambda f: f[0])


def _first(items: list, key) -> list:
    """``items`` without repeats of ``key``, first occurrences kept, in order."""
    seen: set = set()
    return [x for x in items if not (key(x) in seen or seen.add(key(x)))]


expand_inputs.__doc__ = expand_inputs.__doc__.format(exts=", ".join(INPUT_EXTENSIONS))


def probe_image(path: str, checksums: bool = False, verify: Literal["header", "decode"] = "header") -> ImageHeader:
    """Width, height, format (lower case) and optional sha256 of an image, from its header.

    ``verify="decode"`` also decodes the pixels, catching truncated files whose header is
    intact (slower). Raises :class:`BadFile` for empty, unreadable or corrupt files.
    """
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise BadFile(path, f"cannot stat ({exc.strerror or exc})") from None
    if size == 0:
        raise BadFile(path, "empty file (0 bytes)")
    digest = ""
    try:
        if checksums:
            with open(path, "rb") as fh:
                data = fh.read()
            digest = hashlib.sha256(data).hexdigest()
            source: str | io.BytesIO = io.BytesIO(data)
        else:
            source = path
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = im.size
                fmt = (im.format or "").lower()
                if verify == "decode":
                    im.load()
    except PermissionError:
        raise BadFile(path, "permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadFile(path, f"too many pixels (limit {Image.MAX_IMAGE_PIXELS})") from None
    except Exception as exc:  # PIL raises assorted errors on corrupt input
        raise BadFile(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    if width <= 0 or height <= 0:
        raise BadFile(path, f"degenerate size {width}x{height}")
    return ImageHeader(width, height, fmt, digest)


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (same on every machine and run)."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def rel_posix(path: str, root: str) -> str:
    """``path`` relative to ``root`` with forward slashes (stable across operating systems)."""
    return Path(os.path.relpath(path, root)).as_posix()


class ChunkedCsvWriter:
    """Append rows to a CSV file, ``chunk_rows`` at a time (``with`` closes and flushes)."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...], chunk_rows: int = 10_000):
        self.path = Path(path)
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.rows_written = 0
        self._buffer: list[tuple] = []
        self._fh = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._writer.writerow(columns)

    def write(self, row: tuple) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"{self.path}: row has {len(row)} values, expected {len(self.columns)} ({self.columns})")
        self._buffer.append(row)
        if len(self._buffer) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        self._writer.writerows(self._buffer)
        self.rows_written += len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> ChunkedCsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
