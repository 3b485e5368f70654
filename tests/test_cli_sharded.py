"""hrr-detect sharded over ranks (hrr_core.shard): each rank's slice into a part, rank 0's merge
byte-identical to a single process, valid parts reused and broken or stale ones redone.

The in-process tests play the ranks one after the other (rank 1 first, so rank 0 finds every
part and never waits); the slow ones launch two CPU processes with torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrr_core.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from hrr_core.shard import ShardError, World, part_path, parts_dir, read_part, shard_key

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture()
def model_dir(tiny_models) -> Path:
    return tiny_models["classifier"]


@pytest.fixture()
def folder(tmp_path) -> Path:
    """11 random PNGs of two sizes in two sub-folders, plus one empty and one too small file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for sub, size, n in (("a", 40, 6), ("b", 56, 5)):
        (root / sub).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / sub / f"{k:03d}.png")
    (root / "a" / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "b" / "tiny.png")
    return root


def _as_rank(monkeypatch, rank: int, size: int = 2) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(size))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)


def _single(monkeypatch, argv: list[str]) -> int:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    return main(argv)


# ---------------------------------------------------------------- in process, rank by rank


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_merged_output_is_byte_identical_to_one_process(model_dir, corpus, folder, tmp_path, monkeypatch, suffix):
    inputs = [str(folder), *(p for p, _ in corpus.values())]  # the bad-input corpus too: failures merge as well
    one, sharded = tmp_path / f"one{suffix}", tmp_path / f"sharded{suffix}"
    assert _single(monkeypatch, [*inputs, "-c", str(model_dir), "-o", str(one), "-q"]) == EXIT_SOME_FAILED
    for rank in (2, 1):
        _as_rank(monkeypatch, rank, 3)
        assert main([*inputs, "-c", str(model_dir), "-o", str(sharded), "-q"]) == EXIT_OK
        assert not sharded.exists()  # only rank 0 writes the output
    _as_rank(monkeypatch, 0, 3)
    assert main([*inputs, "-c", str(model_dir), "-o", str(sharded), "-q"]) == EXIT_SOME_FAILED
    assert sharded.read_bytes() == one.read_bytes()
    assert sorted(p.name for p in parts_dir(sharded).iterdir()) == [f"rank-0000{r}-of-00003.json" for r in range(3)]


def test_rank0_prints_what_one_process_prints(model_dir, folder, tmp_path, monkeypatch, capsys):
    argv = [str(folder), "-c", str(model_dir), "-o", str(tmp_path / "out.csv")]
    assert _single(monkeypatch, argv) == EXIT_SOME_FAILED
    single = capsys.readouterr()
    _as_rank(monkeypatch, 1)
    assert main(argv) == EXIT_OK
    rank1 = capsys.readouterr()
    assert rank1.out == "" and rank1.err == ""  # the other ranks say nothing
    _as_rank(monkeypatch, 0)
    assert main(argv) == EXIT_SOME_FAILED
    rank0 = capsys.readouterr()
    assert rank0.out == single.out and rank0.err == single.err
    assert "empty.png: empty file" in rank0.err and "tiny.png" in rank0.err


def test_output_is_required_when_sharded(model_dir, folder, monkeypatch, capsys):
    _as_rank(monkeypatch, 1)
    with pytest.raises(SystemExit) as exc:
        main([str(folder), "-c", str(model_dir)])
    assert exc.value.code == EXIT_USAGE
    assert "--output is required when sharding over 2 processes" in capsys.readouterr().err


def test_a_valid_part_is_reused_and_a_corrupt_one_redone(model_dir, folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.json"
    argv = [str(folder), "-c", str(model_dir), "-o", str(out), "-q"]
    _as_rank(monkeypatch, 1)
    assert main(argv) == EXIT_OK  # rank 1's part, as a killed launch would have left it
    mine = part_path(parts_dir(out), 1, 2)
    part = json.loads(mine.read_text())
    part["payload"]["probs"] = [[j, 0.125] for j, _ in part["payload"]["probs"]]  # a mark: reused, not recomputed
    mine.write_text(json.dumps(part))
    theirs = part_path(parts_dir(out), 0, 2)
    theirs.write_text('{"version": 1, "items": ["half-writ')  # a corrupt part of rank 0
    _as_rank(monkeypatch, 0)
    assert main([*argv[:-1]]) == EXIT_SOME_FAILED
    assert "rank 0: reusing" not in capsys.readouterr().err  # rank 0's part was recomputed ...
    assert json.loads(theirs.read_text())["items"] == World(0, 2).shard(sorted_files(folder))
    predictions = json.loads(out.read_text())["predictions"]
    marked = {p["path"] for p in predictions if p["prob_generated"] == 0.125}
    assert marked == set(World(1, 2).shard(sorted_files(folder))) - bad_files(folder)  # ... rank 1's reused
    assert len(predictions) == 11


def test_a_part_for_changed_files_is_redone(model_dir, folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    argv = [str(folder), "-c", str(model_dir), "-o", str(out)]
    _as_rank(monkeypatch, 1)
    assert main(argv) == EXIT_OK
    assert main(argv) == EXIT_OK and "rank 1: reusing" in capsys.readouterr().err
    changed = World(1, 2).shard(sorted_files(folder))[0]
    os.utime(changed, ns=(0, 0))  # same name, other file: the part's key no longer matches
    assert main(argv) == EXIT_OK and "reusing" not in capsys.readouterr().err


def test_ranks_that_saw_other_files_fail_clearly(model_dir, folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    part = part_path(parts_dir(out), 1, 2)
    part.parent.mkdir()
    part.write_text(json.dumps({"version": 1, "items": ["x.png"], "key": "k", "run": "launch-7", "payload": {}}))
    _as_rank(monkeypatch, 0)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "launch-7")
    assert main([str(folder), "-c", str(model_dir), "-o", str(out), "-q"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "was written in this launch for other items" in err and "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------- the shard helpers


def test_world_from_env_and_slices():
    assert World.from_env({}) == World(0, 1, 0)
    world = World.from_env({"WORLD_SIZE": "3", "RANK": "2", "LOCAL_RANK": "0"})
    assert (world.rank, world.size, world.local_rank, world.is_main) == (2, 3, 0, False)
    assert world.shard(list("abcdefg")) == ["c", "f"] and world.shard(list("abcdefg"), 0) == ["a", "d", "g"]
    assert World(0, 1).device("auto") == "auto" and world.device("cpu") == "cpu"
    for bad in ({"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}):
        with pytest.raises(ShardError):
            World.from_env(bad)


def test_read_part_refuses_anything_but_the_same_items_and_key(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    key = shard_key([str(f)], {"model": "m"})
    assert key != shard_key([str(f)], {"model": "n"})
    path = tmp_path / "rank-00000-of-00001.json"
    assert read_part(path, [str(f)], key) is None  # missing
    good = {"version": 1, "items": [str(f)], "key": key, "payload": {"probs": []}}
    path.write_text(json.dumps(good))
    assert read_part(path, [str(f)], key)["payload"] == {"probs": []}
    assert read_part(path, [str(f), "b.png"], key) is None
    path.write_text(json.dumps(good)[:-5])  # half-written
    assert read_part(path, [str(f)], key) is None
    f.write_bytes(b"xy")  # the file changed: a new key
    assert shard_key([str(f)], {"model": "m"}) != key


# ---------------------------------------------------------------- two processes under torchrun


def sorted_files(folder: Path) -> list[str]:
    from hrr_core.data.walk import expand_inputs

    return expand_inputs([str(folder)])[0]


def bad_files(folder: Path) -> set[str]:
    return {str(folder / "a" / "empty.png"), str(folder / "b" / "tiny.png")}


def _torchrun(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "hrr_core.cli", *argv]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow  # two launches of two fresh interpreters importing torch: ~15 s on a 2-core machine
@pytest.mark.timeout(600)
def test_torchrun_two_processes_match_one_and_resume(model_dir, folder, tmp_path, monkeypatch):
    good = tmp_path / "good"
    shutil.copytree(folder, good)
    for bad in bad_files(good):
        os.unlink(bad)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert _single(monkeypatch, [str(good), "-c", str(model_dir), "-o", str(one), "-q"]) == EXIT_OK
    proc = _torchrun([str(good), "-c", str(model_dir), "-o", str(two)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert two.read_bytes() == one.read_bytes()
    assert "11 scored" in proc.stderr and proc.stdout.count("p(generated)") == 1  # one table, from rank 0

    # a relaunch after rank 0 died half way through writing: rank 1's part reused, rank 0's redone
    rank0, rank1 = part_path(parts_dir(two), 0, 2), part_path(parts_dir(two), 1, 2)
    rank0.write_text(rank0.read_text()[:100])
    part = json.loads(rank1.read_text())
    part["payload"]["probs"] = [[j, 0.125] for j, _ in part["payload"]["probs"]]
    rank1.write_text(json.dumps(part))
    two.unlink()
    proc = _torchrun([str(good), "-c", str(model_dir), "-o", str(two)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rank 1: reusing" in proc.stderr and "rank 0: reusing" not in proc.stderr
    assert json.loads(rank0.read_text())["items"] == World(0, 2).shard(sorted_files(good))
    rows = two.read_text().splitlines()[1:]
    ones = one.read_text().splitlines()[1:]
    assert rows[0::2] == ones[0::2]  # rank 0's files: recomputed, the same scores
    assert all(",0.125," in r for r in rows[1::2])  # rank 1's files: from the reused part

    # failures merge too; the launcher turns rank 0's exit code 1 into its own 1
    proc = _torchrun([str(folder), "-c", str(model_dir), "-o", str(tmp_path / "all.json"), "-q"], tmp_path)
    assert proc.returncode == EXIT_SOME_FAILED
    assert "2 input(s) could not be scored" in proc.stderr and "empty.png: empty file" in proc.stderr


def test_a_stale_part_of_an_unnamed_launch_is_waited_for_not_refused(tmp_path, monkeypatch):
    """accelerate launch (and torchrun without --standalone) name every launch 'none'."""
    from hrr_core.shard import run_sharded

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    part = part_path(tmp_path, 1, 2)
    part.write_text(json.dumps({"version": 1, "items": ["old.png"], "key": "k", "run": None, "payload": {}}))
    with pytest.raises(TimeoutError):
        run_sharded(["a", "b"], World(0, 2), tmp_path, {}, lambda items: {"n": len(items)}, poll_s=0.01, timeout_s=0.1)
    assert read_part(part_path(tmp_path, 0, 2), ["a"], shard_key(["a"], {}))["payload"] == {"n": 1}
