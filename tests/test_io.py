import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrr_core.io import (
    ImageLoadError,
    OutputWriteError,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    load_image,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_json(p, {"x": np.float32(1.5), "y": np.arange(2)})
    atomic_write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["a.json"]


def test_atomic_write_failure_keeps_old(tmp_path, monkeypatch):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_atomic_dir_replaces_a_folder_and_leaves_no_temp(tmp_path):
    dst = tmp_path / "view"
    (dst / "old").mkdir(parents=True)
    with atomic_dir(dst) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".view.tmp-")
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in dst.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["view"]
    with atomic_dir(tmp_path / "fresh") as tmp:  # no folder there yet
        (tmp / "a").write_text("a")
    assert (tmp_path / "fresh" / "a").read_text() == "a"


@pytest.mark.parametrize("where", ["build", "swap"])
def test_atomic_dir_failure_keeps_the_old_folder(tmp_path, monkeypatch, where):
    dst = tmp_path / "view"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    real_replace = os.replace

    def replace(src, target):
        if Path(src).name.startswith(".view.tmp-"):  # the new folder cannot be renamed in
            raise OSError(28, "No space left on device")
        real_replace(src, target)

    if where == "swap":
        monkeypatch.setattr("hrr_core.io.os.replace", replace)
    with pytest.raises((RuntimeError, OSError)):
        with atomic_dir(dst) as tmp:
            (tmp / "half.txt").write_text("half")
            if where == "build":
                raise RuntimeError("the build failed")
    assert [p.name for p in dst.iterdir()] == ["old.txt"] and (dst / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["view"]  # no temp or old folder behind


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs mounted at tmp_path/disk (needs root and mount; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_disk_names_the_file_and_the_space_and_keeps_the_old_file(small_disk):
    out = small_disk / "scores.csv"
    atomic_write_bytes(out, b"old")
    with pytest.raises(OutputWriteError) as info:
        atomic_write_bytes(out, b"x" * 200_000)  # does not fit in 64 KiB
    msg = str(info.value)
    assert str(out) in msg and "no space left" in msg and "needs 200000 bytes" in msg and "free on its disk" in msg
    assert "free space and rerun" in msg and "previous scores.csv is left as it was" in msg
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert out.read_bytes() == b"old" and _left(small_disk) == ["scores.csv"]  # no temp file behind


def test_full_disk_during_a_folder_build_keeps_the_old_folder(small_disk):
    dst = small_disk / "model"
    with atomic_dir(dst) as tmp:
        (tmp / "weights.bin").write_bytes(b"old")
    with pytest.raises(OutputWriteError) as info:
        with atomic_dir(dst) as tmp:
            (tmp / "config.json").write_bytes(b"{}" * 8000)
            (tmp / "weights.bin").write_bytes(b"w" * 200_000)
    msg = str(info.value)
    assert str(dst) in msg and "no space left" in msg and "written before it failed" in msg, msg
    assert _left(dst) == ["weights.bin"] and (dst / "weights.bin").read_bytes() == b"old"
    assert _left(small_disk) == ["model"]


def test_read_only_folder_says_make_it_writable_and_keeps_the_old_file(small_disk):
    out = small_disk / "card.json"
    atomic_write_bytes(out, b"old")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(OutputWriteError) as info:
        atomic_write_bytes(out, b"new")
    msg = str(info.value)
    assert str(out) in msg and f"make {small_disk} writable" in msg and info.value.errno == errno.EROFS
    assert out.read_bytes() == b"old"
    with pytest.raises(OutputWriteError, match="writable"):
        with atomic_dir(small_disk / "sub"):
            pass


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_injected_full_disk_at_fsync(tmp_path, monkeypatch, code):
    """Where a delayed-allocation file system reports a full disk: at fsync, after the write."""
    out = tmp_path / "manifest.csv"
    atomic_write_bytes(out, b"old")
    monkeypatch.setattr("hrr_core.io.os.fsync", lambda fd: (_ for _ in ()).throw(OSError(code, os.strerror(code))))
    with pytest.raises(OutputWriteError, match=r"manifest.csv: no space left .*needs 3 bytes"):
        atomic_write_bytes(out, b"new")
    assert out.read_bytes() == b"old" and _left(tmp_path) == ["manifest.csv"]


def test_injected_unwritable_folder_and_other_errors_pass_through(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputWriteError, match=f"make {tmp_path} writable") as info:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert "nothing was left at" in str(info.value) and not (tmp_path / "a.json").exists()

    def broken(*a, **k):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(tempfile, "mkstemp", broken)
    with pytest.raises(OSError, match="Input/output error") as info:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert not isinstance(info.value, OutputWriteError)  # only space and permission errors are translated


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        with atomic_dir(tmp_path / "f"):
            pass


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    im = Image.new("RGB", (9, 5), (200, 10, 10)).convert(mode) if mode != "I;16" else Image.new("I;16", (9, 5), 40000)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    im.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (9, 5)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
        (b"hello world", "not a readable image"),
    ],
)
def test_bad_files_name_the_file(tmp_path, content, words):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path / "d.png")


def test_alpha_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert np.asarray(load_image(tmp_path / "t.png")).min() == 255
