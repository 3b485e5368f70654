"""Atomic file and folder writes, and image loading with clear, per-file errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

# A decompression bomb (a tiny file that decodes to gigapixels) is refused, not decoded.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
_UMASK = os.umask(0)
os.umask(_UMASK)


class ImageLoadError(ValueError):
    """An input file that is not a usable image; the message names the file and the fix."""

    def __init__(self, path: str | os.PathLike, reason: str, fix: str = ""):
        self.path = str(path)
        self.reason = reason
        self.fix = fix
        super().__init__(f"{self.path}: {reason}" + (f" ({fix})" if fix else ""))


class OutputWriteError(OSError):
    """An output that could not be written (disk full, quota, read-only or unwritable folder).

    The message names the path, the bytes needed and free where that is the cause, and the
    fix; the previous output at that path is left as it was."""

    def __init__(self, path: str | os.PathLike, message: str, errno_: int | None = None):
        super().__init__(errno_, message)
        self.path = str(path)
        self.message = message

    def __str__(self) -> str:
        return self.message


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing ancestor)."""
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def write_error(exc: OSError, path: Path, need: str | None = None) -> OSError:
    """Translate a failed write of ``path`` into an :class:`OutputWriteError` whose message
    names the path, the space needed (``need``, e.g. "needs 3.2 MiB") and free, and the fix;
    any other error is returned unchanged."""
    if isinstance(exc, OutputWriteError) or exc.errno not in _NO_SPACE | _NOT_WRITABLE:
        return exc
    kept = f"the previous {path.name} is left as it was" if path.exists() else f"nothing was left at {path}"
    if exc.errno in _NO_SPACE:
        free = _free_bytes(path.parent)
        have = f"{_mib(free)} free on its disk" if free is not None else "free space unknown"
        msg = (
            f"cannot write {path}: no space left on the device ({need or 'needs more space'}, {have}); "
            f"free space and rerun; {kept}"
        )
    else:
        msg = (
            f"cannot write {path}: {os.strerror(exc.errno)} (its folder {path.parent} is not writable); "
            f"make {path.parent} writable or write the output elsewhere, then rerun; {kept}"
        )
    return OutputWriteError(path, msg, exc.errno)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``:
    a reader sees the old file or the new one, never half of one. A full disk or an unwritable
    folder raises :class:`OutputWriteError` naming the path and the space needed."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise write_error(exc, path, f"needs {_mib(len(data))}") from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a fresh hidden temp folder beside ``dst`` and swap it in for ``dst``
    when the ``with`` block ends; if the block raises, the temp folder is removed and ``dst``
    (old or absent) is left as it was. Readers see the old folder or the new one, never a mix::

        with atomic_dir("models/hrr/retrospection_ldm") as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)

    The swap is two renames (old folder aside, new one in); a crash between them leaves the old
    folder in ``.<name>.old-*`` beside ``dst``. Files are not fsynced: this guards against failed
    and interrupted builds, not power loss (:mod:`hrr_core.training.checkpoint` does that).
    A full disk or an unwritable folder, in the block or the swap, raises
    :class:`OutputWriteError` naming ``dst`` and the bytes written so far.
    """
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise NotADirectoryError(f"{dst} exists and is not a folder; remove it or choose another path")
    tmp: Path | None = None
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.tmp-"))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the folder the usual permissions
        yield tmp
        _swap_dir(tmp, dst)
    except OSError as exc:
        written = _tree_bytes(tmp) if tmp is not None else None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputWriteError):
            raise
        need = f"needs more than the {_mib(written)} written before it failed" if written else None
        error = write_error(exc, dst, need)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _tree_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (what a failed build had written so far)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def _swap_dir(tmp: Path, dst: Path) -> None:
    """Rename ``tmp`` to ``dst``, moving an existing ``dst`` aside first and deleting it after."""
    if not dst.exists():
        os.replace(tmp, dst)
        return
    old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.old-"))
    os.replace(dst, old / dst.name)
    try:
        os.replace(tmp, dst)
    except BaseException:
        os.replace(old / dst.name, dst)  # put the old folder back
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (memory stays flat for big files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")  # weights never loaded (they can run code)


def image_seed(pixels: np.ndarray, seed: int) -> int:
    """The one seeding rule of per-image noise (HRR's retrospection; the cache, the study and
    ``hrr-detect`` alike): the first 64 bits of the sha256 of ``seed``, the shape and the
    (H, W, 3) uint8 pixels. An image's noise depends on its content and the configured seed
    only: not on its file name, its codec, the batch it lands in or the order of the inputs."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    head = f"{int(seed)}:{'x'.join(map(str, pixels.shape))}:".encode()
    return int(hashlib.sha256(head + pixels.tobytes()).hexdigest()[:16], 16)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open any still image as 8-bit RGB, applying its EXIF orientation.

    16-bit, palette, CMYK, grey and alpha images are converted (alpha composited on white);
    animated files give their first frame. Anything else raises :class:`ImageLoadError`
    naming the file and what to do.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(p, "no such file", "check the path")
    if p.is_dir():
        raise ImageLoadError(p, "is a directory, not an image file", "pass the folder itself to walk it")
    if p.stat().st_size == 0:
        raise ImageLoadError(p, "empty file (0 bytes)", "re-download or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.seek(0)
                im.load()
                im = ImageOps.exif_transpose(im) or im
                return to_rgb(im)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            p, f"too many pixels ({exc})", f"images above {MAX_IMAGE_PIXELS} pixels are refused; downscale it first"
        ) from None
    except PermissionError:
        raise ImageLoadError(p, "permission denied", "make the file readable") from None
    except OSError as exc:
        raise ImageLoadError(
            p,
            f"not a readable image ({exc})",
            "the file is corrupt, truncated or not an image; re-export it as PNG or JPEG",
        ) from None
    except Exception as exc:  # PIL raises assorted errors on hostile input
        raise ImageLoadError(
            p, f"could not decode ({type(exc).__name__}: {exc})", "re-export it as PNG or JPEG"
        ) from None


def to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        im = Image.fromarray((arr * 255 + 0.5).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def image_to_array(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array of an RGB image."""
    return np.asarray(im.convert("RGB"), dtype=np.uint8)
