import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrr_core.io import ImageLoadError, atomic_dir, atomic_write_bytes, atomic_write_json, load_image


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
