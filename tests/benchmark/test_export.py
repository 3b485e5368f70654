"""The folder-view export CLI on a tiny manifest: layout, link modes, refusals, atomic swap."""

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hrr_core.benchmark import export
from hrr_core.benchmark.export import ExportError, export_view
from hrr_core.data.manifest import read_manifest, write_manifest


@pytest.fixture()
def bench(tmp_path):
    """Per split: two shared reals, one fake each of families 'a' and 'b'; returns the manifest path."""
    root = tmp_path / "bench"
    rows = []
    for split in ("train", "test"):
        for k in range(2):
            for gen, label in (("real", 0), ("a", 1), ("b", 1)):
                rid = f"{split}-{k}" + ("" if gen == "real" else f"-{gen}")
                rel = f"images/{split}/{gen}/{rid}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((8, 8, 3), 10 * k + label, np.uint8)).save(root / rel)
                rows.append(
                    {
                        "id": rid,
                        "path": rel,
                        "label": label,
                        "generator": gen,
                        "source": f"{split}{k}",
                        "split": split,
                        "width": 8,
                        "height": 8,
                        "format": "png",
                        "sha256": "",
                    }
                )
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv"


def listing(dest):
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink())


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy"])
def test_export_layout_and_modes(bench, tmp_path, mode):
    dest = tmp_path / "out" / "view"
    assert export.main(["--manifest", str(bench), "--dest", str(dest), "--mode", mode]) == 0
    expected = [
        f"{g}/{sub}/{name}.png"
        for g in ("a", "b")
        for sub, name in (
            ("0_real", "test-0"),
            ("0_real", "test-1"),
            ("1_fake", f"test-0-{g}"),
            ("1_fake", f"test-1-{g}"),
        )
    ]
    assert listing(dest) == sorted(expected)
    placed, src = dest / "a" / "1_fake" / "test-0-a.png", bench.parent / "images" / "test" / "a" / "test-0-a.png"
    assert placed.read_bytes() == src.read_bytes()
    assert placed.is_symlink() == (mode == "symlink")
    assert os.path.samefile(placed, src) == (mode != "copy")  # a hard link or a symlink is the same file
    assert [p.name for p in dest.parent.iterdir()] == ["view"]  # no temporary folder left behind


def test_refuses_non_empty_dest_unless_overwrite(bench, tmp_path, capsys):
    dest = tmp_path / "view"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    assert export.main(["--manifest", str(bench), "--dest", str(dest)]) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err and (dest / "keep.txt").exists()
    assert export.main(["--manifest", str(bench), "--dest", str(dest), "--split", "train", "--overwrite"]) == 0
    assert not (dest / "keep.txt").exists() and (dest / "b" / "1_fake" / "train-1-b.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "view"]


def test_empty_dest_folder_is_used(bench, tmp_path):
    dest = tmp_path / "view"
    dest.mkdir()
    out = export_view(read_manifest(bench), dest)
    assert out["generators"] == ["a", "b"] and out["real_per_generator"] == 2 and out["files"] == 8


def test_clear_errors(bench, tmp_path, capsys):
    assert export.main(["--manifest", str(tmp_path / "nope.csv"), "--dest", str(tmp_path / "v")]) == 2
    assert "dvc repro prepare" in capsys.readouterr().err
    m = read_manifest(bench)
    with pytest.raises(ExportError, match="no images in split 'val'"):
        export_view(m, tmp_path / "v", "val")
    with pytest.raises(ExportError, match="no generated images"):
        export_view(m[m["label"] == 0], tmp_path / "v")
    (bench.parent / "images" / "test" / "b" / "test-1-b.png").unlink()
    with pytest.raises(ExportError, match="1 image.*missing.*test-1-b.png"):
        export_view(m, tmp_path / "v")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        export_view(m[m["id"] != "test-1-b"], tmp_path / "file")
    assert not (tmp_path / "v").exists()


def test_failure_midway_leaves_dest_untouched(bench, tmp_path, monkeypatch):
    dest = tmp_path / "view"
    dest.mkdir()
    (dest / "old.txt").write_text("old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "export_folder_view", boom)
    with pytest.raises(OSError, match="disk full"):
        export_view(read_manifest(bench), dest, overwrite=True)
    assert listing(dest) == ["old.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["bench", "view"]
