"""hrr_core.data.walk: the one directory walker, streaming (benchmarks) or sorted with its
problems reported (hrr-detect's expand_inputs over the bad-input corpus)."""

from __future__ import annotations

import os
from pathlib import Path

from hrr_core.data.walk import INPUT_EXTENSIONS, expand_inputs, iter_image_files


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_sorted_walk_lists_files_before_subfolders_and_reports_problems(tmp_path):
    expected = [_touch(tmp_path / n) for n in ("a.png", "b.jpg")]
    expected += [_touch(tmp_path / "a" / "z.png"), _touch(tmp_path / "b" / "c" / "y.gif")]
    _touch(tmp_path / "a" / "notes.txt")
    os.symlink("nowhere.png", tmp_path / "dangling.png")
    os.symlink("nowhere.txt", tmp_path / "dangling.txt")  # not an image name: skipped silently
    os.symlink(tmp_path, tmp_path / "b" / "back")  # a folder cycle: visited once
    problems = []
    found = list(iter_image_files(tmp_path, INPUT_EXTENSIONS, sort=True, on_error=lambda p, r: problems.append((p, r))))
    assert found == expected
    assert problems == [(str(tmp_path / "dangling.png"), "broken symbolic link (its target does not exist)")]
    assert sorted(iter_image_files(tmp_path, INPUT_EXTENSIONS)) == sorted(expected)  # streaming: same files, silent


def test_unlistable_folder_is_reported(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    _touch(locked / "a.png")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("hrr_core.data.walk.os.scandir", scandir)  # chmod 0 does not stop root
    problems = []
    assert list(iter_image_files(tmp_path, sort=True, on_error=lambda p, r: problems.append((p, r)))) == []
    assert problems == [(str(locked), "cannot list this folder (Permission denied)")]
    assert list(iter_image_files(tmp_path)) == []  # streaming: skipped silently


def test_expand_inputs_reports_instead_of_raising(corpus, tmp_path):
    folder = Path(corpus["good.png"][0]).parent
    (folder / "sub").mkdir(exist_ok=True)
    os.symlink("..", folder / "sub" / "up")  # a folder cycle
    patterns = [str(folder / "*.JPG"), str(tmp_path / "*.nothing")]
    files, failures = expand_inputs([folder, corpus["missing.png"][0], *patterns])
    names = {os.path.basename(f) for f in files}
    assert {"good.png", "UPPER.JPG", "animated.webp", "image.tiff", "empty.png"} <= names
    assert "notes.txt" not in names and "folder_named_x.png" not in names  # not an image name / a folder
    assert len(files) == len(set(files))  # the glob and the folder found UPPER.JPG once
    reasons = dict(failures)
    assert reasons[corpus["missing.png"][0]] == "no such file or folder"
    assert "matched no file" in reasons[str(tmp_path / "*.nothing")]
    assert "loop" in reasons[str(folder / "loop.png")] and "broken" in reasons[str(folder / "dangling.png")]


def test_expand_inputs_keeps_named_files_and_flags_empty_folders(tmp_path):
    notes = _touch(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    files, failures = expand_inputs([notes, tmp_path / "empty", notes])
    assert files == [notes]  # named explicitly: kept whatever its extension, once
    assert failures == [(str(tmp_path / "empty"), f"folder holds no image files ({', '.join(INPUT_EXTENSIONS)})")]
