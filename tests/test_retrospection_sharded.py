"""The representation cache computed by several ranks (hrr_core.shard): each rank's shard files,
rank 0's index, the folder byte-identical to a single process's; parts reused on relaunch.

The in-process tests play the ranks one after the other (the highest first, so rank 0 finds every
part); the slow one launches two CPU processes with torchrun."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hrr_core.data import cache
from hrr_core.data.cache import PARTS_DIR, compute_representation_cache
from hrr_core.models.ldm import LatentDiffusion, LDMConfig
from hrr_core.models.msr import MSRConfig
from hrr_core.retrospection import cache_key, msr_representation, prepare_ldm, wait_for_ldm
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.shard import World, part_path

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = LDMConfig(
    space="pixel",
    norm_num_groups=4,
    unet_block_out_channels=(8, 8),
    unet_steps=2,
    unet_batch_size=2,
    train_crop=16,
    max_train_timestep=300,
    seed=3,
)
MSR = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, num_steps=1, strength=0.2)
CFG = RetrospectionConfig(ldm=TINY, shard_size=4)  # shard files of 4 images


def manifest(root: Path, n: int = 11) -> pd.DataFrame:
    rows = []
    for k in range(n):
        size = (40, 56)[k % 2]
        Image.fromarray((np.random.default_rng(k).random((size, size, 3)) * 255).astype(np.uint8)).save(
            root / f"{k}.png"
        )
        rows.append({"id": f"img{k:02d}", "path": f"{k}.png", "label": k % 2, "width": size, "height": size})
    df = pd.DataFrame(rows)
    df.attrs["root"] = str(root)
    return df


@pytest.fixture(scope="module")
def ldm():
    torch.manual_seed(0)
    return LatentDiffusion.create(TINY).eval()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def compute(df, ldm, root: Path, world: World = World(), rep=None) -> dict:
    rep = rep or msr_representation(MSR, ldm)
    return compute_representation_cache(df, rep, CFG, root, torch.device("cpu"), lambda *_: None, world)


def run_ranks(size: int, work) -> list:
    """``work(world)`` for every rank of ``size``, concurrently (threads), results in rank order."""
    with ThreadPoolExecutor(size) as pool:
        return list(pool.map(work, [World(rank, size) for rank in range(size)]))


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_leave_the_folder_one_process_leaves(tmp_path, ldm, size):
    df = manifest(tmp_path)
    calls = (df.iloc[:3], df)  # two calls on one cache folder, the second adding images (two methods sharing a key)
    for rows in calls:
        compute(rows, ldm, tmp_path / "one")
    outs = run_ranks(size, lambda world: [compute(rows, ldm, tmp_path / "many", world) for rows in calls])
    assert [o["computed"] for o in outs[0]] == [3, 8] and outs[0][1]["cached"] == 11
    assert sum(o[1]["images"] for o in outs[1:]) == 8 - 4  # rank 0 did shard file 1 of the second call
    key = cache_key(MSR, CFG)
    one, many = files_of(tmp_path / "one" / key), files_of(tmp_path / "many" / key)
    assert many == one  # index.csv, config.json and every shard file, byte for byte
    assert sorted(one) == ["config.json", "index.csv", *(f"shard_{k:05d}.safetensors" for k in range(3))]


class Killed(Exception):
    """A rank stopped after writing its part, before rank 0 merged."""


def test_a_valid_part_is_reused_and_a_corrupt_one_redone(tmp_path, ldm, monkeypatch):
    df = manifest(tmp_path, 9)
    calls: list[int] = []
    real = msr_representation(MSR, ldm)
    counting = dataclasses.replace(real, fn=lambda imgs, g: (calls.append(len(imgs)), real.fn(imgs, g))[1])
    monkeypatch.setattr(cache, "wait_until", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        compute(df, ldm, tmp_path / "many", World(1, 2), counting)  # shard file 1 of 0, 1, 2: 4 images
    assert sum(calls) == 4
    folder = tmp_path / "many" / cache_key(MSR, CFG)
    part_path(folder / PARTS_DIR, 0, 2).write_text('{"version": 1, "items": ["shard_000')  # half-written
    with pytest.raises(Killed):
        compute(df, ldm, tmp_path / "many", World(1, 2), counting)
    assert sum(calls) == 4  # rank 1's part reused: nothing recomputed
    out = compute(df, ldm, tmp_path / "many", World(0, 2), counting)
    assert out["computed"] == 9 and sum(calls) == 4 + 5  # rank 0 redid its shard files 0 and 2 only
    assert not (folder / PARTS_DIR).exists()  # merged and cleaned up
    compute(df, ldm, tmp_path / "one")
    assert files_of(folder) == files_of(tmp_path / "one" / cache_key(MSR, CFG))


def test_nothing_to_compute_writes_no_part(tmp_path, ldm):
    df = manifest(tmp_path, 3)
    compute(df, ldm, tmp_path / "c")
    assert compute(df, ldm, tmp_path / "c", World(1, 2))["images"] == 0
    assert not (tmp_path / "c" / cache_key(MSR, CFG) / PARTS_DIR).exists()


def test_other_ranks_wait_for_rank0s_ldm(tmp_path):
    cfg = RetrospectionConfig(ldm=TINY)
    with pytest.raises(TimeoutError, match="retrospection LDM of this config"):
        wait_for_ldm(cfg, tmp_path / "ldm", poll_s=0.01, timeout_s=0.05)
    prepare_ldm(cfg, [torch.rand(3, 24, 24) for _ in range(2)], tmp_path / "ldm", torch.device("cpu"))
    wait_for_ldm(cfg, tmp_path / "ldm", poll_s=0.01, timeout_s=0.05)  # there now: returns at once
    other = RetrospectionConfig(ldm=LDMConfig(space="pixel", seed=4))
    with pytest.raises(TimeoutError):  # an LDM of another config is not the one to load
        wait_for_ldm(other, tmp_path / "ldm", poll_s=0.01, timeout_s=0.05)


WORKER = textwrap.dedent("""
    import json, sys
    import pandas as pd, torch
    from tests.test_retrospection_sharded import CFG, MSR, TINY
    from hrr_core.data.cache import compute_representation_cache
    from hrr_core.models.ldm import LatentDiffusion
    from hrr_core.retrospection import msr_representation
    from hrr_core.shard import World

    torch.manual_seed(0)
    ldm = LatentDiffusion.create(TINY).eval()
    df = pd.read_csv(sys.argv[1], dtype={"id": str, "path": str})
    df.attrs["root"] = sys.argv[2]
    out = compute_representation_cache(df, msr_representation(MSR, ldm), CFG, sys.argv[3], torch.device("cpu"),
                                       print, World.from_env())
    print(json.dumps(out))
""")


@pytest.mark.slow  # two fresh interpreters importing torch: ~10 s on a 2-core machine
@pytest.mark.timeout(300)
def test_torchrun_two_processes_write_the_single_process_cache(tmp_path, ldm):
    (tmp_path / "imgs").mkdir()
    df = manifest(tmp_path / "imgs")
    df.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "worker.py").write_text(WORKER)
    compute(df, ldm, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [
            *cmd,
            str(tmp_path / "worker.py"),
            str(tmp_path / "manifest.csv"),
            str(tmp_path / "imgs"),
            str(tmp_path / "two"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[rank 1] retrospection msr" in proc.stdout and '"computed": 11' in proc.stdout
    key = cache_key(MSR, CFG)
    assert files_of(tmp_path / "two" / key) == files_of(tmp_path / "one" / key)
