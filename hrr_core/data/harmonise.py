"""Harmonisation: re-encode reals and fakes through one identical pipeline.

Why (shortcuts listed in /shared benchmarks.md): DiffusionForensics ships JPEG reals and PNG
fakes (DIRE's checkpoint drops from ACC 89.9 to 49.5 once fakes are JPEG too); GenImage
ships JPEG q~96 reals and PNG fakes whose size depends on the generator (BigGAN 128,
ADM/GLIDE/VQDM 256, SD/Wukong 512, Midjourney 1024); ForenSynths results move by up to 15
points between crop and no crop. A detector can read the label off the file format, the
quantisation tables or the image size instead of generation traces. Writing every image,
whatever its class, with the same ``format`` (and JPEG quality), the same ``resize`` policy
and no metadata removes those shortcuts: after harmonisation ``format`` and ``width x height``
carry no label information (tests check this).

What it does not remove: compression history. A JPEG real re-encoded to JPEG is compressed
twice, a PNG fake once; ``format: png`` keeps the reals' JPEG blocking. Report results with
and without harmonisation (benchmarks.md asks for both).

Resize policies (``size`` = N):
- ``none``          keep the pixels as they are.
- ``center_crop``   central N x N crop, no resampling (pixel traces intact); an image whose
                    short side is below N is first upscaled (bicubic) to short side N.
- ``resize_short``  resize the short side to N (bicubic, antialiased), then the central N x N
                    crop, so every output is exactly N x N.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image

from hrr_core.confutil import to_dict
from hrr_core.data.manifest import absolute_paths, validate_manifest
from hrr_core.io import ImageLoadError, atomic_write_bytes, load_image, to_rgb
from hrr_core.schema.benchmark import HarmoniseConfig  # noqa: F401 (config lives in the schema)
from hrr_core.shard import PARTS_DIR, World, run_sharded

SUFFIXES = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif"}


def _target_format(cfg: HarmoniseConfig, source_format: str | None) -> str:
    if cfg.format != "keep":
        return cfg.format
    return "jpeg" if (source_format or "").lower() in ("jpeg", "jpg") else "png"


def _resample(img: Image.Image, cfg: HarmoniseConfig) -> Image.Image:
    if cfg.resize == "none":
        return img
    n = cfg.size
    w, h = img.size
    if cfg.resize == "resize_short" or min(w, h) < n:
        scale = n / min(w, h)
        w, h = max(n, round(w * scale)), max(n, round(h * scale))
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - n) // 2, (h - n) // 2
    return img.crop((left, top, left + n, top + n))


def harmonise_image(img: Image.Image, cfg: HarmoniseConfig, source_format: str | None = None) -> bytes:
    """Encoded bytes of ``img`` after the resize policy, in the configured format.

    ``source_format`` (the manifest's ``format``) decides the output for ``format: keep``:
    JPEG stays JPEG (at ``jpeg_quality``), anything else becomes PNG.
    """
    info = dict(img.info)
    rgb = img if img.mode == "RGB" else to_rgb(img)
    rgb = _resample(rgb, cfg)
    extra = {} if cfg.strip_metadata else {k: info[k] for k in ("exif", "icc_profile") if info.get(k)}
    buf = io.BytesIO()
    if _target_format(cfg, source_format) == "jpeg":
        rgb.save(buf, "JPEG", quality=cfg.jpeg_quality, optimize=False, **extra)
    else:
        rgb.save(buf, "PNG", compress_level=6, **extra)
    return buf.getvalue()


def _out_rel(path: str, suffix: str) -> str:
    """Output path relative to ``out_dir``: the input's relative path with its new suffix;
    absolute or ``..`` paths go under ``external/`` by a hash of the path."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        p = PurePosixPath("external", hashlib.sha1(path.encode()).hexdigest()[:16] + p.suffix)
    return str(p.with_suffix(suffix))


def _out_format(cfg: HarmoniseConfig, fmt: str) -> str:
    return fmt if cfg.is_identity else _target_format(cfg, fmt)


def _one(src: str, fmt: str, cfg: HarmoniseConfig) -> tuple[bytes, str]:
    """(bytes, format) of one harmonised file; raises ImageLoadError."""
    if cfg.is_identity:
        load_image(src)  # refuses empty and corrupt files with a clear reason
        return Path(src).read_bytes(), fmt
    return harmonise_image(load_image(src), cfg, fmt), _target_format(cfg, fmt)


def _names(rels: list[str], fmts: list[str], cfg: HarmoniseConfig, kept: set[int] | None = None) -> dict[int, str]:
    """Output path (relative to ``out_dir``) of every row in ``kept`` (None: all), in row order:
    the input's path with the new suffix, or with the suffix appended when that name is taken by
    an earlier row or is another input's (a.png beside a.jpg: a.png.jpg)."""
    inputs, used, names = set(rels), set(), {}
    for i, (rel, fmt) in enumerate(zip(rels, fmts)):
        if kept is not None and i not in kept:
            continue
        out_fmt = _out_format(cfg, fmt)
        out_rel = _out_rel(rel, SUFFIXES.get(out_fmt, Path(rel).suffix))
        if out_rel in used or (out_rel != rel and out_rel in inputs):
            out_rel = _out_rel(rel, Path(rel).suffix + SUFFIXES.get(out_fmt, ""))
        used.add(out_rel)
        names[i] = out_rel
    return names


def harmonise_manifest(
    df: pd.DataFrame, root: str | os.PathLike, out_dir: str | os.PathLike, cfg: HarmoniseConfig, world: World = World()
) -> pd.DataFrame | None:
    """Write a harmonised copy of every row's image under ``out_dir`` (atomic writes) and return
    the new manifest: paths relative to ``out_dir``, new width/height/format/sha256, the old
    values kept as ``orig_width``/``orig_height``/``orig_format``. Files that fail to load are
    skipped and listed in ``out_dir/bad_files.csv`` (and ``attrs["bad_files"]``).

    Under several processes (``world``) rank ``r`` harmonises rows ``r, r + n, ...`` and records
    them in a part under ``out_dir/.parts/`` (reused when relaunched); rank 0 merges and returns
    the manifest, the others return None. Files land under the names a single process gives."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = validate_manifest(df).reset_index(drop=True)
    sources, rels, fmts = list(absolute_paths(df, root)), list(df["path"]), list(df["format"])
    planned = _names(rels, fmts, cfg)  # if every file loads; a bad file can free a name for a later row

    def harmonise(_: list[str]) -> dict:
        done, bad = [], []
        for i in world.shard(range(len(df))):
            try:
                data, out_fmt = _one(sources[i], fmts[i], cfg)
            except ImageLoadError as exc:
                bad.append([i, exc.reason])
                continue
            atomic_write_bytes(out_dir / planned[i], data)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
            done.append([i, w, h, out_fmt, hashlib.sha256(data).hexdigest()])
        return {"done": done, "bad": bad}

    if world.size == 1:
        parts = [harmonise(sources)]
    else:
        context = {"config": to_dict(cfg), "rels": rels, "formats": fmts, "out_dir": str(out_dir)}
        parts = run_sharded(sources, world, out_dir / PARTS_DIR, context, harmonise)
        if parts is None:
            return None
    done = {row[0]: row[1:] for part in parts for row in part["done"]}
    bad = sorted((rels[i], reason) for part in parts for i, reason in part["bad"])
    keep = sorted(done)
    names = _names(rels, fmts, cfg, set(keep))
    for i in keep:  # ascending: a name freed by a bad file is taken only once its planned holder moved
        if names[i] != planned[i] and (out_dir / planned[i]).exists():  # (moved already by a run that died after)
            os.replace(out_dir / planned[i], out_dir / names[i])
    new_cols = {
        "path": [names[i] for i in keep],
        **{col: [done[i][k] for i in keep] for k, col in enumerate(("width", "height", "format", "sha256"))},
    }
    out = df.iloc[keep].reset_index(drop=True)
    out = out.assign(orig_width=out["width"], orig_height=out["height"], orig_format=out["format"], **new_cols)
    table = pd.DataFrame(bad, columns=["path", "reason"])
    atomic_write_bytes(out_dir / "bad_files.csv", table.to_csv(index=False, lineterminator="\n").encode())
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)
    out.attrs.update(root=str(out_dir), bad_files=bad)
    return out
