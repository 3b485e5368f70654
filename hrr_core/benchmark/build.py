"""Build the embedded benchmark: real crops split by photo, content-matched fakes from the
generator zoo, both classes through one codec path, written as files plus a manifest.

Layout under ``out_dir``::

    manifest.csv                      one row per image (see hrr_core.data.manifest)
    images/<split>/real/<id>.png      real crops (shared by every generator)
    images/<split>/<family>/<id>.png  fakes, one per real crop and family
    generators/<family>/              the trained generator weights
    generator_stats.json              training cost and losses per family
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hrr_core.benchmark.splits import POOL, Crop, assign_splits, collection_of, generator_pool, sample_crops
from hrr_core.data.manifest import MASK_COLUMNS, absolute_paths, write_manifest
from hrr_core.data.transforms import encode_image, estimate_jpeg_quality, to_tensor, to_uint8
from hrr_core.io import atomic_write_bytes, atomic_write_json
from hrr_core.schema.benchmark import BenchmarkConfig  # noqa: F401 (config lives in the schema)

REAL = "real"


@dataclass
class RealSet:
    """Real crops of every split plus the generators' training crops (train photos only)."""

    crops: dict[str, list[Crop]]  # split -> crops
    gen_train: torch.Tensor  # (N, 3, S, S) in [0, 1]
    photo_split: dict[str, str] = field(default_factory=dict)  # photo id -> split


def make_real_set(photos: pd.DataFrame, load_photo, cfg: BenchmarkConfig) -> RealSet:
    """Split ``photos`` (columns id, group) by group and sample every crop.

    ``load_photo(row) -> (H, W, 3) uint8``. Each photo draws from its own RNG stream, so adding a
    photo does not change the crops of the others. With ``cfg.generator_pool > 0`` the pool's
    photos (:func:`pool_photos`) give only the generators' training crops and get no split
    (``photo_split`` maps them to ``"generator"``); else the train photos give them (v1)."""
    style = photos.loc[photos["collection"].isin(cfg.style_shift), "group"] if "collection" in photos else []
    pool = pool_photos(photos, cfg)
    detector = photos[~photos["id"].isin(pool["id"])]
    group_split = assign_splits(list(detector["group"]), cfg.split_fractions, cfg.split_seed, list(style))
    crops: dict[str, list[Crop]] = {"train": [], "val": [], "test": []}
    gen_train: list[np.ndarray] = []
    train_rows = [r for _, r in detector.iterrows() if group_split[r["group"]] == "train"]
    per_photo = -(-cfg.gen_train_crops // max(1, len(train_rows)))
    for _, row in detector.iterrows():
        split = group_split[row["group"]]
        seed = int(hashlib.sha256(f"{cfg.crop_seed}:{row['id']}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        arr = load_photo(row)
        crops[split].extend(sample_crops(arr, row["id"], cfg.crop_sizes, cfg.crops_per_size, cfg.short_side_range, rng))
        if split == "train" and not len(pool):
            extra = sample_crops(arr, row["id"], [cfg.gen_train_size], per_photo, cfg.short_side_range, rng)
            gen_train.extend(c.pixels for c in extra)
    if len(pool):
        gen = pool_crops(pool, load_photo, cfg)
    else:
        gen = torch.stack([to_tensor(a) for a in gen_train[: cfg.gen_train_crops]])  # (N, 3, S, S)
    photo_split = {r["id"]: group_split[r["group"]] for _, r in detector.iterrows()}
    photo_split.update({pid: POOL for pid in pool["id"]})
    return RealSet(crops, gen, photo_split)


def pool_photos(photos: pd.DataFrame, cfg: BenchmarkConfig) -> pd.DataFrame:
    """The rows of ``photos`` in the generator pool (none when ``cfg.generator_pool`` is 0)."""
    style = photos.loc[photos["collection"].isin(cfg.style_shift), "group"] if "collection" in photos else []
    groups = generator_pool(list(photos["group"]), cfg.generator_pool, cfg.pool_seed, list(style))
    return photos[photos["group"].isin(groups)].reset_index(drop=True)


def pool_crops(pool: pd.DataFrame, load_photo, cfg: BenchmarkConfig, stream: str = "train") -> torch.Tensor:
    """``cfg.gen_train_crops`` crops of ``cfg.gen_train_size`` px from the pool's photos, spread
    evenly, (N, 3, S, S) in [0, 1]. ``stream`` names an independent RNG stream per photo
    (``"val"``: crops for a generator's validation PSNR)."""
    if not len(pool):
        raise ValueError("the generator pool is empty: raise benchmark.generator_pool or add photos")
    per_photo = -(-cfg.gen_train_crops // len(pool))
    out: list[np.ndarray] = []
    for _, row in pool.sort_values("id").iterrows():
        seed = int(hashlib.sha256(f"{cfg.crop_seed}:{stream}:{row['id']}".encode()).hexdigest()[:8], 16)
        extra = sample_crops(
            load_photo(row),
            row["id"],
            [cfg.gen_train_size],
            per_photo,
            cfg.short_side_range,
            np.random.default_rng(seed),
        )
        out.extend(c.pixels for c in extra)
    picks = np.linspace(0, len(out) - 1, min(len(out), cfg.gen_train_crops)).round().astype(int)
    return torch.stack([to_tensor(out[i]) for i in np.unique(picks)])  # (N, 3, S, S)


def _real_id(c: Crop) -> str:
    return f"{c.photo_id}-s{c.size}-{c.index:02d}"


def _write(out_dir: Path, rel: str, data: bytes) -> dict:
    atomic_write_bytes(out_dir / rel, data)
    quality = estimate_jpeg_quality(data)
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "quality": quality or 0}


def _row(
    rid: str,
    rel: dict,
    label: int,
    generator: str,
    crop: Crop,
    split: str,
    cfg: BenchmarkConfig,
    origin: tuple[str, str],
) -> dict:
    group, collection = origin  # the photo's group and source collection
    return {
        "id": rid,
        **rel,
        "label": label,
        "generator": generator,
        "source": group,
        "collection": collection or "unknown",
        "photo": crop.photo_id,
        "split": split,
        "width": crop.size,
        "height": crop.size,
        "format": cfg.codec,
        "size": crop.size,
    }


def write_reals(real: RealSet, groups: dict[str, tuple[str, str]], out_dir: Path, cfg: BenchmarkConfig) -> list[dict]:
    rows = []
    ext = "png" if cfg.codec == "png" else "jpg"
    for split, crops in real.crops.items():
        for c in crops:
            rid = _real_id(c)
            rel = _write(
                out_dir, f"images/{split}/{REAL}/{rid}.{ext}", encode_image(c.pixels, cfg.codec, cfg.jpeg_quality)
            )
            rows.append(_row(rid, rel, 0, REAL, c, split, cfg, groups[c.photo_id]))
    return rows


def write_fakes(
    family: str,
    gen,
    real: RealSet,
    groups: dict[str, tuple[str, str]],
    out_dir: Path,
    cfg: BenchmarkConfig,
    device: torch.device,
    seed: int,
) -> tuple[list[dict], dict]:
    """Generate one fake per real crop with ``gen`` (batched by size) and write them through
    the same codec path as the reals; returns manifest rows and quality stats (PSNR)."""
    rows, psnrs = [], []
    ext = "png" if cfg.codec == "png" else "jpg"
    generator = torch.Generator().manual_seed(seed)
    for split, crops in real.crops.items():
        for size in cfg.crop_sizes:
            bucket = [c for c in crops if c.size == size]
            for start in range(0, len(bucket), cfg.batch_size):
                batch = bucket[start : start + cfg.batch_size]
                x = torch.stack([to_tensor(c.pixels) for c in batch])  # (B, 3, S, S)
                with torch.no_grad():
                    y = gen.generate(x.to(device), device, generator).float().cpu()
                if y.shape != x.shape:
                    raise RuntimeError(f"generator {family} returned {tuple(y.shape)} for input {tuple(x.shape)}")
                masks = getattr(gen, "masks", None) or [None] * len(batch)  # ldm_inpaint: the regenerated boxes
                for c, img, mask in zip(batch, y, masks):
                    pixels = to_uint8(img)
                    psnrs.append(_psnr(c.pixels, pixels))
                    rid = f"{_real_id(c)}-{family}"
                    rel = _write(
                        out_dir,
                        f"images/{split}/{family}/{rid}.{ext}",
                        encode_image(pixels, cfg.codec, cfg.jpeg_quality),
                    )
                    row = _row(rid, rel, 1, family, c, split, cfg, groups[c.photo_id])
                    if mask is not None:
                        row.update(zip(MASK_COLUMNS, mask))
                    rows.append(row)
    return rows, {"psnr_db": float(np.mean(psnrs)) if psnrs else float("nan")}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))


def build_benchmark(
    photos: pd.DataFrame,
    load_photo,
    cfg: BenchmarkConfig,
    zoo_cfg,
    out_dir: Path,
    device: torch.device,
    seed: int,
    log=print,
    zoo_dir: Path | None = None,
) -> pd.DataFrame:
    """Run the whole build: crops, generators (trained on the pool or the train photos, or the
    shipped ones from ``zoo_dir`` when ``cfg.zoo`` is ``shipped``), fakes, manifest."""
    from hrr_core.benchmark.generators import build_generator, load_shipped  # the zoo needs diffusers

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    real = make_real_set(photos, load_photo, cfg)
    collections = photos["collection"] if "collection" in photos else [""] * len(photos)
    groups = {i: (g, c) for i, g, c in zip(photos["id"], photos["group"], collections)}  # photo -> (group, collection)
    rows = write_reals(real, groups, out_dir, cfg)
    pool_ids = sorted(pid for pid, split in real.photo_split.items() if split == POOL)
    where = f"{len(pool_ids)} generator-pool photos" if pool_ids else "train photos"
    log(
        f"reals: {len(rows)} crops; {len(real.gen_train)} generator-training crops from {where} "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    stats, shared = {}, {}  # shared: models two families use (the latent LDM of ldm_img2img / ldm_sample)
    for i, family in enumerate(cfg.families):
        t1 = time.perf_counter()
        if cfg.zoo == "shipped":
            gen, card = load_shipped(family, zoo_cfg, Path(zoo_dir or cfg.zoo_dir), pool_ids, device)
            fit_stats = {"shipped": True, "wall_seconds": card["wall_seconds"], **card["fit"]}
        else:
            gen = build_generator(family, zoo_cfg, shared)
            fit_stats = gen.fit(real.gen_train.to(device), device, torch.Generator().manual_seed(seed + 101 * (i + 1)))
            gen.save(out_dir / "generators" / family)
        fit_s = time.perf_counter() - t1
        fake_rows, quality = write_fakes(family, gen, real, groups, out_dir, cfg, device, seed + 7919 * (i + 1))
        rows.extend(fake_rows)
        stats[family] = {
            "fit": fit_stats,
            "fit_seconds": round(fit_s, 2),
            "generate_seconds": round(time.perf_counter() - t1 - fit_s, 2),
            **quality,
        }
        log(
            f"{family}: {'loaded' if cfg.zoo == 'shipped' else 'fit'} {fit_s:.1f}s, generate "
            f"{stats[family]['generate_seconds']:.1f}s, PSNR {quality['psnr_db']:.2f} dB"
        )
    manifest = pd.DataFrame(rows)
    for col in MASK_COLUMNS:
        if col in manifest:
            manifest[col] = manifest[col].astype("Int64")
    write_manifest(manifest, out_dir / "manifest.csv")
    atomic_write_json(out_dir / "generator_stats.json", stats)
    return manifest


def stats_json(stats: dict) -> str:
    return json.dumps(stats, indent=2, sort_keys=True, default=float)


def photo_table(seed_table: pd.DataFrame, cfg: BenchmarkConfig) -> pd.DataFrame:
    """The photos the benchmark uses: those of the releases in ``photo_releases`` (a table
    without a ``release`` column is all release 1), grey ones only when ``include_grey``;
    ``max_photos`` keeps a deterministic subset (sorted by id, then every n-th) for small profiles."""
    releases = seed_table["release"].astype(int) if "release" in seed_table else pd.Series(1, index=seed_table.index)
    if not releases.isin(cfg.photo_releases).any():
        raise ValueError(
            f"benchmark.photo_releases {list(cfg.photo_releases)} selects no seed photo; "
            f"the seed set has releases {sorted(set(releases))}"
        )
    table = seed_table[releases.isin(cfg.photo_releases)]
    table = table if cfg.include_grey else table[~table["is_grey"].astype(bool)]
    table = table.sort_values("id").reset_index(drop=True)
    if "package" in table:
        table = table.assign(collection=[collection_of(p) for p in table["package"]])
        unknown = sorted(set(cfg.style_shift) - set(table["collection"]))
        if unknown:
            raise ValueError(
                f"benchmark.style_shift names {unknown}, not collections of the seed set; "
                f"pick from {sorted(set(table['collection']))} in params.yaml"
            )
    if cfg.max_photos is not None and len(table) > cfg.max_photos:
        idx = np.linspace(0, len(table) - 1, cfg.max_photos).round().astype(int)
        table = table.iloc[np.unique(idx)].reset_index(drop=True)
    return table


def families_of(manifest: pd.DataFrame) -> Sequence[str]:
    return sorted(set(manifest.loc[manifest["label"] == 1, "generator"]))


LINK_MODES = ("hardlink", "symlink", "copy")


def _place(src: Path, target: Path, mode: str) -> None:
    """Put ``src`` at ``target``: a hard link (a copy where the filesystem refuses one), an
    absolute symbolic link, or a copy."""
    if mode == "symlink":
        os.symlink(src.resolve(), target)
        return
    if mode == "hardlink":
        try:
            os.link(src, target)
            return
        except OSError:  # another filesystem, or links not supported: copy instead
            pass
    shutil.copy2(src, target)


def export_folder_view(manifest: pd.DataFrame, dest: Path, split: str = "test", mode: str = "hardlink") -> Path:
    """Write ``dest/<generator>/{0_real,1_fake}/`` for one split, the layout other detectors'
    code reads (ForenSynths style). ``mode`` (:data:`LINK_MODES`): hard links to the
    benchmark's files where the filesystem allows (copies otherwise), so the view costs no
    space; absolute symlinks; or copies. Reals shared by every generator appear under each
    generator's ``0_real``. Files already at their target are kept. The CLI with checks and
    an atomic swap is :mod:`hrr_core.benchmark.export`."""
    if mode not in LINK_MODES:
        raise ValueError(f"mode must be one of {LINK_MODES}, got {mode!r}")
    dest = Path(dest)
    part = manifest[manifest["split"] == split]
    paths = dict(zip(part["id"], absolute_paths(part)))
    reals = part[(part["label"] == 0) & (part["generator"] == REAL)]
    for family in families_of(part):
        fakes = part[(part["label"] == 1) & (part["generator"] == family)]
        for sub, rows in (("0_real", reals), ("1_fake", fakes)):
            folder = dest / family / sub
            folder.mkdir(parents=True, exist_ok=True)
            for rid in rows["id"]:
                src = Path(paths[rid])
                target = folder / src.name
                if not target.exists():
                    _place(src, target, mode)
    return dest
