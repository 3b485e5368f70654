"""Sharding a pass over many items across the processes of ``torchrun`` / ``accelerate launch``.

Both launchers start one process per GPU (or CPU slot) with ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` set; a plain ``python`` run is world size 1 and needs none of this. Over a sorted
item list (files, manifest ids):

- rank ``r`` of ``n`` takes ``items[r::n]`` (:meth:`World.shard`) and writes what it computed,
  atomically, to a part file ``rank-0000r-of-0000n.json`` in a parts folder, with the exact items
  it covered and a key (a digest of those items, their sizes and modification times when they
  are files, and the ``context`` the results depend on: checkpoint, device ...);
- a valid part for the same items and key is reused instead of recomputed, so a run killed part
  way and launched again redoes only the shards whose part is missing, half-written or stale;
- rank 0 waits for every part (polling the folder: no process group, hence no collective timeout
  while a slow shard is still running) and gets them in rank order; it alone merges and writes.

If a rank dies, the launcher stops the others; relaunching the same command resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hrr_core.io import atomic_write_json

PART_VERSION = 1
PARTS_DIR = ".parts"  # a sharded stage's per-rank parts, beside its output; removed once rank 0 has merged them
POLL_S = 0.5  # how often rank 0 looks for the other ranks' parts

T = TypeVar("T")


class ShardError(RuntimeError):
    """The ranks of one launch disagree (e.g. they saw different file lists): no merge is possible."""


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones: ``rank`` of ``size`` (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> World:
        """The world torchrun / ``accelerate launch`` describe in ``WORLD_SIZE``, ``RANK`` and
        ``LOCAL_RANK``; world size 1 when they are unset."""
        env = os.environ if env is None else env
        try:
            size = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ShardError("WORLD_SIZE, RANK and LOCAL_RANK must be integers") from None
        if size < 1 or not 0 <= rank < size or local < 0:
            raise ShardError(f"RANK={rank} does not fit WORLD_SIZE={size}")
        return cls(rank, size, local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T], rank: int | None = None) -> list[T]:
        """The items of ``rank`` (default: this process): ``items[rank::size]``."""
        return list(items[self.rank if rank is None else rank :: self.size])

    def device(self, spec: str) -> str:
        """``spec`` ('auto' | 'cpu' | 'cuda' | 'cuda:N') for this rank: one GPU per local rank
        when CUDA is asked for (or 'auto' finds it) in a world of several processes."""
        if self.size == 1 or spec not in ("auto", "cuda"):
            return spec
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else spec


def parts_dir(output: str | os.PathLike) -> Path:
    """Where the parts of a sharded run writing ``output`` go: ``<output>.parts/`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def part_path(folder: str | os.PathLike, rank: int, size: int) -> Path:
    return Path(folder) / f"rank-{rank:05d}-of-{size:05d}.json"


def shard_key(items: Sequence[str], context: dict[str, Any], stat_files: bool = True) -> str:
    """Digest of ``items`` (with each file's size and mtime when ``stat_files``; None for one
    that cannot be stat'ed) and ``context``: a part is reused only under the same key."""
    stats = [_stat(p) for p in items] if stat_files else None
    blob = json.dumps([PART_VERSION, list(items), stats, context], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def read_part(path: str | os.PathLike, items: Sequence[str], key: str) -> dict | None:
    """The part at ``path`` if it is complete and covers exactly ``items`` under ``key``, else
    None (missing, half-written, corrupt or stale: recompute it)."""
    part = _load(path)
    if part is None or part.get("items") != list(items) or part.get("key") != key:
        return None
    return part if isinstance(part.get("payload"), dict) else None


def _load(path: str | os.PathLike) -> dict | None:
    try:
        part = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return part if isinstance(part, dict) and part.get("version") == PART_VERSION else None


def _run_id() -> str | None:
    """The launch's id, the same on every rank, to tell this launch's parts from older ones:
    ``torchrun --standalone`` draws a fresh one; 'none' (torchrun's default, what ``accelerate
    launch`` passes) says nothing."""
    run = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    return None if run in ("", "none") else run


def run_sharded(
    items: Sequence[str],
    world: World,
    folder: str | os.PathLike,
    context: dict[str, Any],
    compute: Callable[[list[str]], dict],
    *,
    stat_files: bool = True,
    poll_s: float = POLL_S,
    timeout_s: float | None = None,
    on_reuse: Callable[[Path], None] | None = None,
) -> list[dict] | None:
    """Compute (or reuse) this rank's part, ``compute(shard) -> payload`` (a JSON-able dict);
    rank 0 then waits for every rank's part and returns their payloads in rank order, the
    other ranks return None. ``on_reuse(path)`` hears when this rank's part is reused."""
    mine = world.shard(items)
    key = shard_key(mine, context, stat_files)
    path = part_path(folder, world.rank, world.size)
    part = read_part(path, mine, key)
    if part is not None:
        if on_reuse is not None:
            on_reuse(path)
        payload = part["payload"]
    else:
        payload = compute(mine)
        record = {"version": PART_VERSION, "items": mine, "key": key, "run": _run_id(), "payload": payload}
        atomic_write_json(path, record)
    if not world.is_main:
        return None
    payloads = [payload]
    for rank in range(1, world.size):
        payloads.append(_wait_for(folder, world, rank, items, context, stat_files, poll_s, timeout_s))
    return payloads


def _wait_for(
    folder: str | os.PathLike,
    world: World,
    rank: int,
    items: Sequence[str],
    context: dict[str, Any],
    stat_files: bool,
    poll_s: float,
    timeout_s: float | None,
) -> dict:
    theirs = world.shard(items, rank)
    key = shard_key(theirs, context, stat_files)
    path = part_path(folder, rank, world.size)
    found: dict = {}

    def ready() -> bool:
        part = read_part(path, theirs, key)
        if part is not None:
            found.update(part)
            return True
        other = _load(path)
        if other is not None and _run_id() is not None and other.get("run") == _run_id():
            raise ShardError(
                f"{path} was written in this launch for other items or another checkpoint than rank 0 "
                "expects (did the inputs change while the ranks listed them?); run the command again"
            )
        return False

    wait_until(ready, f"rank {rank}'s part {path}", poll_s, timeout_s)
    return found["payload"]


def wait_until(ready: Callable[[], bool], what: str, poll_s: float = POLL_S, timeout_s: float | None = None) -> None:
    """Poll ``ready()`` every ``poll_s`` seconds until it is true; ``TimeoutError`` naming
    ``what`` after ``timeout_s`` (None: wait as long as it takes; the launcher stops a rank
    whose peer died)."""
    start = time.monotonic()
    while not ready():
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what} did not appear within {timeout_s:g} s")
        time.sleep(poll_s)
