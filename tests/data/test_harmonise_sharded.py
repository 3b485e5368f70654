"""prepare's harmonisation sharded over ranks (hrr_core.shard): each rank re-encodes its rows,
rank 0 merges; the folder and the manifest are a single process's, names included."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hrr_core.confutil import from_dict
from hrr_core.data import harmonise
from hrr_core.data.harmonise import PARTS_DIR, HarmoniseConfig, harmonise_manifest
from hrr_core.shard import World, part_path

REPO = Path(__file__).resolve().parents[2]
JPEG = {"format": "jpeg", "resize": "resize_short", "size": 12}


def rows_of(root: Path, fx) -> pd.DataFrame:
    """11 images, among them a.png beside a.jpg (a.png.jpg) and a corrupt b.png before b.webp:
    b.webp gets b.jpg only because b.png fails."""
    names = [f"img{k:02d}.png" for k in range(7)] + ["a.png", "a.jpg", "b.png", "b.webp"]
    for i, name in enumerate(names):
        fx.write_corrupt(root / name) if name == "b.png" else fx.write_image(root / name, size=(16 + i, 20))
    formats = {".png": "png", ".jpg": "jpeg", ".webp": "webp"}
    return pd.DataFrame(
        [
            dict(
                id=n,
                path=n,
                label=i % 2,
                generator="g",
                source=n,
                split="test",
                width=16 + i,
                height=20,
                format=formats[Path(n).suffix],
                sha256="",
            )  # fmt: skip
            for i, n in enumerate(names)
        ]
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_write_what_one_process_writes(tmp_path, fx, size):
    df, cfg = rows_of(tmp_path / "in", fx), from_dict(HarmoniseConfig, JPEG, "harmonise")
    one = harmonise_manifest(df, tmp_path / "in", tmp_path / "one", cfg)
    for rank in reversed(range(1, size)):
        assert harmonise_manifest(df, tmp_path / "in", tmp_path / "many", cfg, World(rank, size)) is None
    many = harmonise_manifest(df, tmp_path / "in", tmp_path / "many", cfg, World(0, size))
    pd.testing.assert_frame_equal(many, one)
    assert many.attrs == {**one.attrs, "root": str(tmp_path / "many")}
    assert files_of(tmp_path / "many") == files_of(tmp_path / "one")  # no .parts left
    assert {"a.png.jpg", "a.jpg", "b.jpg"} <= set(one["path"]) and one.attrs["bad_files"][0][0] == "b.png"


def test_a_valid_part_is_reused_and_a_corrupt_one_redone(tmp_path, fx, monkeypatch):
    df, cfg = rows_of(tmp_path / "in", fx), from_dict(HarmoniseConfig, JPEG, "harmonise")
    done: list[str] = []
    real = harmonise._one
    monkeypatch.setattr(harmonise, "_one", lambda src, fmt, c: (done.append(Path(src).name), real(src, fmt, c))[1])
    assert harmonise_manifest(df, tmp_path / "in", tmp_path / "many", cfg, World(1, 2)) is None
    assert len(done) == 5
    part_path(tmp_path / "many" / PARTS_DIR, 0, 2).write_text("{")  # a corrupt part of rank 0
    assert harmonise_manifest(df, tmp_path / "in", tmp_path / "many", cfg, World(1, 2)) is None
    assert len(done) == 5  # reused
    many = harmonise_manifest(df, tmp_path / "in", tmp_path / "many", cfg, World(0, 2))
    assert sorted(done[5:]) == sorted(df["path"].iloc[0::2])  # rank 0 redid its rows only
    pd.testing.assert_frame_equal(many, harmonise_manifest(df, tmp_path / "in", tmp_path / "one", cfg))
    assert files_of(tmp_path / "many") == files_of(tmp_path / "one")


WORKER = textwrap.dedent("""
    import sys
    import pandas as pd
    from hrr_core.confutil import from_dict
    from hrr_core.data.harmonise import HarmoniseConfig, harmonise_manifest
    from hrr_core.shard import World

    df = pd.read_csv(sys.argv[1], keep_default_na=False)
    cfg = from_dict(HarmoniseConfig, {"format": "jpeg", "resize": "resize_short", "size": 12}, "harmonise")
    out = harmonise_manifest(df, sys.argv[2], sys.argv[3], cfg, World.from_env())
    if out is not None:
        out.to_csv(sys.argv[4], index=False)
""")


@pytest.mark.timeout(300)
def test_torchrun_two_processes_harmonise_as_one(tmp_path, fx):
    """Not slow: the workers never import torch (~3 s)."""
    df, cfg = rows_of(tmp_path / "in", fx), from_dict(HarmoniseConfig, JPEG, "harmonise")
    df.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "worker.py").write_text(WORKER)
    one = harmonise_manifest(df, tmp_path / "in", tmp_path / "one", cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
    args = [str(tmp_path / f) for f in ("worker.py", "rows.csv", "in", "two", "two.csv")]
    proc = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert files_of(tmp_path / "two") == files_of(tmp_path / "one")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "two.csv", keep_default_na=False), one, check_dtype=False)
