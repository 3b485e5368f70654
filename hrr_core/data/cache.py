"""The representation cache: per-image tensors computed once by a frozen model and stored
keyed by a hash of the representation's config (HRR's MSR representations and DIRE's
reconstruction residuals share it). Reading it needs no model: training and evaluation read
cached tensors through :class:`RetrospectionDataset`.

Layout under ``root/<key>/`` (key = hash of the representation config + the LDM's identity +
the seed)::

    index.csv                    id, shard, shape, content (sha256 of the file, 16 hex) of every cached image
    shard_00000.safetensors      up to ``shard_size`` tensors float16, keyed by id
                                 (MSR: (K, C', S, S); DIRE: (3, H, W) at the image's own size)
    config.json                  the representation config, the LDM digest, the seed and the
                                 digest of the model's weights the tensors were computed with

A change of the representation config gives a new key and a new folder; images already cached
under a key are not recomputed, so the stage's outputs persist across runs, unless their
content changed (an entry whose file hash differs is recomputed) or the model did (a folder
whose weights digest differs from the model's is emptied first): a cache never serves a tensor
of other pixels or another model. Representations follow one seeding rule, shared with the
study and ``hrr-detect``: each image is computed alone, its noise drawn from a generator seeded
by :func:`hrr_core.io.image_seed` (its pixels and the seed), so its tensor depends on neither
the batch, the shard, the order nor the number of processes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save

from hrr_core.confutil import to_dict
from hrr_core.data.manifest import absolute_paths
from hrr_core.data.transforms import to_tensor
from hrr_core.io import atomic_write_bytes, atomic_write_json, image_seed, image_to_array, load_image, sha256_file
from hrr_core.schema.retrospection import RetrospectionConfig
from hrr_core.shard import PARTS_DIR, World, run_sharded, wait_until


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ldm_digest(cfg: RetrospectionConfig) -> str:
    return _digest({"ldm": to_dict(cfg.ldm), "vae": cfg.pretrained_vae_dir, "unet": cfg.pretrained_unet_dir})


CACHE_DTYPE = torch.float16  # what a cached tensor is stored as; on-the-fly inference rounds through it too
SEEDING = "image_seed"  # the seeding rule, in the key: caches of an earlier rule (batch-seeded) are not read


def representation_key(name: str, rep_config, cfg: RetrospectionConfig) -> str:
    """The folder name of one representation's cache: a hash of ``{name: its config}``, the
    LDM, the seed and the seeding rule (not of batch or shard sizes)."""
    return _digest({name: to_dict(rep_config), "ldm": ldm_digest(cfg), "seed": cfg.seed, "seeding": SEEDING})


def weights_digest(model: torch.nn.Module | None) -> str | None:
    """sha256 (16 hex) of a model's state: every tensor's name, dtype, shape and bytes."""
    if model is None:
        return None
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Representation:
    """What the cache stores for one method: ``name`` and ``config`` (hashed into the key) and
    ``fn(images, generator) -> tensors``: a list of (3, H, W) images in [0, 1] on the model's
    device -> one float tensor per image. ``scales`` divides the reported cost (MSR's K);
    ``model``: the frozen model ``fn`` runs (its weights digest is recorded with the cache)."""

    name: str
    config: object
    fn: Callable[[list[torch.Tensor], torch.Generator], list[torch.Tensor]]
    scales: int = 1
    model: torch.nn.Module | None = None


def represent_image(rep: Representation, pixels: np.ndarray, seed: int, device: torch.device) -> torch.Tensor:
    """One image's representation under the one seeding rule: (H, W, 3) uint8 pixels, alone,
    noise from a generator seeded by ``image_seed(pixels, seed)``."""
    generator = torch.Generator().manual_seed(image_seed(pixels, seed))
    return rep.fn([to_tensor(pixels).to(device)], generator)[0]


def contents_of(rows: pd.DataFrame) -> list[str]:
    """What each cache entry is keyed by beside its id: the sha256 (16 hex) of the image file, from
    the manifest's ``sha256`` column where the build recorded it, else read from the file."""
    recorded = rows["sha256"].tolist() if "sha256" in rows else [""] * len(rows)
    return [(h or sha256_file(p))[:16] for h, p in zip(recorded, absolute_paths(rows))]


def _stale_model(folder: Path, digest: str | None) -> bool:
    try:
        recorded = json.loads((folder / "config.json").read_text()).get("model_digest")
    except (OSError, ValueError):
        return False
    return recorded != digest


def compute_representation_cache(
    rows: pd.DataFrame,
    rep: Representation,
    cfg: RetrospectionConfig,
    root: Path,
    device: torch.device,
    log=print,
    world: World = World(),
) -> dict:
    """Make sure every image of ``rows`` is cached under ``root/<representation_key>``; compute
    only the missing or changed ones (by file hash; all of them when the folder was computed with
    other weights), each image alone under :func:`represent_image`, in sorted-id order, shard files
    of ``cfg.shard_size`` images. Returns cost figures (ms per image and per scale).

    Under several processes (``world``, e.g. :meth:`World.from_env` under torchrun) rank ``r``
    computes the shard files ``r, r + n, ...`` of those a single process would write (the same
    images, hence the same tensors), records them in a part under ``.parts/`` (reused when the
    run is relaunched) and rank 0 writes ``index.csv``: the folder ends as one process leaves it."""
    folder = Path(root) / representation_key(rep.name, rep.config, cfg)
    digest = weights_digest(rep.model)
    if world.is_main and _stale_model(folder, digest):
        log(f"{prefix_of(world)}retrospection {rep.name}: {folder.name} was computed with other weights; recomputing")
        shutil.rmtree(folder)
    if not world.is_main and _stale_model(folder, digest):
        wait_until(lambda: not _stale_model(folder, digest), f"rank 0's reset of {folder}")
    index = read_index(folder)
    rows = rows.sort_values("id")
    content_of = dict(zip(rows["id"], contents_of(rows)))
    known = dict(zip(index["id"], index["content"]))
    todo = rows[[known.get(i) != c for i, c in content_of.items()]]
    paths, ids = absolute_paths(todo).tolist(), todo["id"].tolist()
    base = int(index["shard"].max()) + 1 if len(index) else 0  # new shard files after every existing one
    index = index[~index["id"].isin(ids)]  # entries of changed files are replaced (their old tensors stay unread)
    per_shard = cfg.shard_size
    spans = {
        base + k: (start, min(start + per_shard, len(ids))) for k, start in enumerate(range(0, len(ids), per_shard))
    }
    prefix = prefix_of(world)

    def compute(names: list[str]) -> dict:
        written = {}
        for name in names:
            shard = int(name.removeprefix("shard_"))
            lo, hi = spans[shard]
            pending: dict[str, torch.Tensor] = {}
            for k in range(lo, hi):
                pixels = image_to_array(load_image(paths[k]))  # (H, W, 3) uint8
                pending[ids[k]] = represent_image(rep, pixels, cfg.seed, device).to("cpu", CACHE_DTYPE)
            table = _write_shard(folder, shard, pending)
            written[name] = table.assign(content=[content_of[i] for i in table["id"]]).to_dict(orient="list")
            log(f"{prefix}retrospection {rep.name}: {hi}/{len(ids)} images")
        return {"shards": written}

    names = [f"shard_{k:05d}" for k in spans]
    t0 = time.perf_counter()
    with torch.no_grad():
        if world.size == 1:
            parts = [compute(names)]
        elif ids:
            context = {"key": folder.name, "ids": _digest(ids), "per_shard": per_shard}
            parts = run_sharded(names, world, folder / PARTS_DIR, context, compute, stat_files=False)
        else:
            parts = [compute([])] if world.is_main else None
    seconds = time.perf_counter() - t0
    if parts is None:  # another rank: back once rank 0 has indexed every new image, so that a next call reads them
        wait_until(lambda: set(ids) <= set(read_index(folder)["id"]), f"rank 0's merged {folder / 'index.csv'}")
        return {
            "key": folder.name,
            "rank": world.rank,
            "images": sum(hi - lo for lo, hi in world.shard([*spans.values()])),
        }
    written = {name: table for part in parts for name, table in part["shards"].items()}
    merged = pd.concat([index, *(pd.DataFrame(written[n]) for n in names)], ignore_index=True)
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)  # read: gone before the index says the ranks are done
    atomic_write_bytes(folder / "index.csv", merged.to_csv(index=False).encode())
    atomic_write_json(
        folder / "config.json",
        {
            rep.name: to_dict(rep.config),
            "ldm_digest": ldm_digest(cfg),
            "seed": cfg.seed,
            "seeding": SEEDING,
            "model_digest": digest,
        },
    )
    per_image = 1000 * seconds / max(1, len(ids))
    return {
        "key": folder.name,
        "computed": len(ids),
        "cached": len(merged),
        "ms_per_image": round(per_image, 2),
        "ms_per_image_per_scale": round(per_image / rep.scales, 2),
    }


def prefix_of(world: World) -> str:
    return f"[rank {world.rank}] " if world.size > 1 else ""


def _write_shard(folder: Path, shard: int, tensors: dict[str, torch.Tensor]) -> pd.DataFrame:
    name = f"shard_{shard:05d}.safetensors"
    atomic_write_bytes(folder / name, save({k: v.contiguous() for k, v in tensors.items()}))
    return pd.DataFrame(
        {"id": list(tensors), "shard": shard, "shape": ["x".join(map(str, v.shape)) for v in tensors.values()]}
    )


def read_index(folder: Path) -> pd.DataFrame:
    f = Path(folder) / "index.csv"
    columns = {"id": str, "shard": int, "shape": str, "content": str}
    if not f.exists():
        return pd.DataFrame({k: pd.Series(dtype=t) for k, t in columns.items()})
    index = pd.read_csv(f, dtype=columns, keep_default_na=False)
    return index if "content" in index else index.assign(content="")  # an index without hashes: every entry stale


def _bucket(shape: str) -> tuple[int, ...]:
    """The size bucket of a cached tensor's shape: (H, W); (T, S, S) for tiled MSR
    (T, K, C', S, S), so a batch holds images with the same number of tiles."""
    dims = tuple(int(s) for s in shape.split("x"))
    return (dims[0], *dims[-2:]) if len(dims) == 5 else dims[-2:]


class RetrospectionDataset(torch.utils.data.Dataset):
    """Items ``{"inputs": float32 tensor, "labels": float, "ids": str}`` read from a cache
    (MSR: (K, C', S, S), tiled MSR: (T, K, C', S, S); DIRE: (3, H, W)); ``sizes`` per item for
    size-bucketed batches (tiled: by tile count)."""

    def __init__(self, manifest: pd.DataFrame, folder: str | Path):
        self.folder = Path(folder)
        index = read_index(self.folder).set_index("id")
        missing = sorted(set(manifest["id"]) - set(index.index))
        if missing:
            raise ValueError(
                f"{len(missing)} images are not in the retrospection cache {self.folder} (e.g. {missing[0]!r}); "
                "run the retrospect stage (dvc repro retrospect) for this method's representation config"
            )
        self.ids = manifest["id"].tolist()
        self.labels = manifest["label"].astype(np.float32).to_numpy()
        self.shards = index.loc[self.ids, "shard"].astype(int).tolist()
        self.sizes = [_bucket(shape) for shape in index.loc[self.ids, "shape"]]
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        shard = self.shards[i]
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.folder / f"shard_{shard:05d}.safetensors"), framework="pt")
        x = self._handles[shard].get_tensor(self.ids[i]).float()
        return {"inputs": x, "labels": torch.tensor(self.labels[i]), "ids": self.ids[i]}
